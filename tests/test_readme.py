"""The README as a user reads it: one way of calling the CLI, and every command it shows
exists with the options it shows; the license it names is in the checkout."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import typer

from tinyformer.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def shown_commands() -> list[list[str]]:
    """The `tinyformer ...` lines of the README's code blocks, comments stripped."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    # a command continued with a trailing backslash is one command
    lines = [
        line.split("  #")[0] for block in blocks for line in block.replace("\\\n", " ").splitlines()
    ]
    return [
        shlex.split(line) for line in lines if "tinyformer " in line and not line.startswith("#")
    ]


def test_the_cli_is_called_one_way() -> None:
    commands = shown_commands()
    assert len(commands) > 15
    assert all(argv[0] == "tinyformer" for argv in commands), [
        " ".join(a) for a in commands if a[0] != "tinyformer"
    ]


def test_every_command_shown_exists_with_its_options() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for argv in shown_commands():
        name = argv[1]
        command = commands.get(name)
        assert command is not None, f"README shows `tinyformer {name}`, which does not exist"
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        for arg in argv[2:]:
            if arg.startswith("-"):
                assert arg.split("=")[0] in known, f"`tinyformer {name}` has no {arg}"


def test_the_license_pyproject_names_is_in_the_checkout() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == {"text": "Apache-2.0"}
    assert "Apache License 2.0 (`LICENSE`)" in README


def test_the_readme_explains_its_names_and_its_figures() -> None:
    for name in ("**SuperNAS**", "**SparseNAS**", "**SparseEngine**"):
        assert name in README
    assert "## Where the CMSIS-NN figures come from" in README
    assert "## Latency in milliseconds" in README
