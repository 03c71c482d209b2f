"""`tinyformer run --target <t> --json` end to end, as a user runs it."""

import json
import subprocess
import sys


def test_run_json_prints_the_measurement(pytestconfig, tmp_path) -> None:
    target = pytestconfig.getoption("--target")
    cmd = [sys.executable, "-m", "tinyformer.cli", "run", "--target", target, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("target", "peak_sram_bytes", "flash_bytes", "stack_bytes", "output_sha256"):
        assert key in out
    count = out.get("instructions", out.get("cycles"))
    assert count > 0
    assert out["matches_reference"] is True
    assert out["peak_sram_bytes"] == out["static_ram_bytes"] + out["stack_bytes"]
    assert not (tmp_path / "results").exists()  # `run` records only when asked


def test_unknown_target_is_one_clear_line(tmp_path) -> None:
    cmd = [sys.executable, "-m", "tinyformer.cli", "run", "--target", "nope"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert "unknown target 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
