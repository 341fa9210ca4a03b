"""The command line, the README's commands, and the bundled insurance loader.

The loaders' error cases are in `tests/test_bad_inputs_data.py`.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from rpjax._src import cli
from rpjax._src.data import insurance

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_certify_demo_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "demo.json"
    code = cli.main(["certify-demo", "--n", "1000", "--people", "5", "--no-progress",
                     "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert ("| person | BMI | true | label | radius (std) | radius (BMI) | pA_lower | abstain "
            "| samples |") in text
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 5
    assert result["base_test_accuracy"] > 0.9
    for row in result["rows"]:
        assert row["abstain"] == (row["label"] == -1)
        assert row["radius_std"] <= result["max_radius_std"] + 1e-12
        assert abs(row["radius_bmi"] - row["radius_std"] * 6.0959) < 1e-3 * 6.1
    assert result["versions"]["jax"]


@pytest.mark.slow
def test_certify_demo_sequential(tmp_path, capsys):
    """`--method sequential`: the same people, each stopping as soon as decided; the demo
    reports the samples each used and the forward passes saved."""
    out = tmp_path / "demo.json"
    code = cli.main(["certify-demo", "--n", "4000", "--people", "6", "--no-progress",
                     "--method", "sequential", "--radius", "0.5", "--json", str(out)])
    assert code == 0
    assert "fewer than fixed-n" in capsys.readouterr().out
    result = json.loads(out.read_text())
    samples = [row["samples"] for row in result["rows"]]
    assert all(1 <= s <= 4000 for s in samples) and min(samples) < 4000
    assert result["forward_passes"] >= sum(samples) + 6 * 100
    assert result["config"]["method"] == "sequential" and result["config"]["radius"] == 0.5


def test_bad_cli_value_is_a_clear_error(capsys):
    assert cli.main(["certify-demo", "--sigma", "-1"]) == 2
    assert "sigma" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "rpjax._src.cli", "--help"], capture_output=True,
                          text=True, check=True)
    assert "certify-demo" in proc.stdout


def _readme_commands():
    text = open(os.path.join(_ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [b.strip() for b in blocks[:2]]


def test_readme_starts_with_two_commands_and_ci_runs_the_test_one():
    main_job, tests = _readme_commands()
    assert "rpjax certify-demo" in main_job or "rpjax reproduce" in main_job
    assert "pytest" in tests and "pip install" in tests
    ci = open(os.path.join(_ROOT, ".ci", "run"), encoding="utf-8").read()
    assert tests in ci, "the README's test command must appear verbatim in .ci/run"


def test_insurance_loader_statistics():
    data = insurance.load_insurance()
    assert data.x.shape == (1338, 11) and data.x.dtype == np.float32
    assert data.features[:3] == ("age", "bmi", "children")
    assert abs(data.bmi.mean() - 30.663) < 1e-3
    assert abs(data.bmi_std - 6.0959) < 1e-4  # population std
    assert (data.bmi.min(), data.bmi.max()) == (15.96, 53.13)
    assert abs((data.bmi < 33.4).mean() - 0.683) < 1e-3
    np.testing.assert_allclose(data.x[:, 1], data.standardize_bmi(data.bmi), atol=1e-5)
    np.testing.assert_allclose(data.x[:, 3:].sum(axis=1), 3.0)  # three one-hot groups


def test_help_is_fast_to_import_and_a_closed_pipe_ends_quietly():
    """`rpjax --help` imports neither JAX nor SciPy (issue 25: 6.4 s under load before), and
    `rpjax ... | head` closing the pipe early ends with status 0, no traceback."""
    code = ("import contextlib, io, sys\n"
            "from rpjax._src import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    cli.main(['--help'])\n"
            "print(sorted(m for m in ('jax', 'scipy', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", out
    proc = subprocess.Popen([sys.executable, "-m", "rpjax._src.cli", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away before the help is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
