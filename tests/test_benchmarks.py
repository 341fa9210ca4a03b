"""The benchmark scripts run in their quick form (no performance target is asserted)."""

import json
import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_bench_engine_quick(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(_ROOT, "benchmarks", "bench_engine.py"), "--quick",
         "--json", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for model in ("mlp", "cnn"):
        (record,) = result["results"][model]
        assert record["fwd_per_s"] > 0 and record["median_s"] > 0
    assert "fwd/s" in proc.stdout
