"""Run by Python at start-up when hil/fake_board is on PYTHONPATH: with TINYFORMER_FAKE_PROBE
set (a fake board's control socket), pyOCD's probe side is that board's (pyocd_standin.py),
in the pytest process and in every `tinyformer` it starts alike."""

import os

if os.environ.get("TINYFORMER_FAKE_PROBE"):
    import pyocd_standin

    pyocd_standin.install(os.environ["TINYFORMER_FAKE_PROBE"])
