# TinyFormer: `make demo` runs the main job on QEMU, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
APT_PKGS := gcc make cmake git gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup tools test test-host test-hil demo lint clean

setup: tools $(VENV)/.installed

# Debian packages, installed only when missing (idempotent, no network when all present).
tools:
	@missing=""; \
	for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# lint first: a style or type error fails in seconds, not after the suite
test: setup lint
	$(PY) -m pytest tests hil -q

test-host: setup
	$(PY) -m pytest tests -q

test-hil: setup
	$(PY) -m pytest hil -q

demo: setup
	$(VENV)/bin/tinyformer demo --fresh

lint: setup
	$(VENV)/bin/ruff check tinyformer tests hil
	$(VENV)/bin/ruff format --check tinyformer tests hil
	$(VENV)/bin/mypy

clean:
	rm -rf build firmware/build
