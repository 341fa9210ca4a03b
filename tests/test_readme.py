"""The README's example code runs, and its CLI reference matches the parser."""

import os
import re

import pytest

from rpjax._src import cli

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_README = open(os.path.join(_ROOT, "README.md"), encoding="utf-8").read()


@pytest.mark.slow  # runs every example end to end, like the notebooks
def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", _README, flags=re.S)
    assert blocks, "the README has no python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102


def _help(argv, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    try:
        cli.main(argv)
    except SystemExit:
        pass
    return capsys.readouterr().out.rstrip()


def test_cli_reference_is_in_sync(monkeypatch, capsys):
    for argv in (["--help"], ["reproduce", "--help"], ["certify-demo", "--help"],
                 ["certify", "--help"], ["audit", "--help"], ["summarize", "--help"]):
        text = _help(argv, monkeypatch, capsys)
        assert text and text in _README, (
            f"README's `rpjax {' '.join(argv)}` block is out of date; regenerate it with "
            f"COLUMNS=100 rpjax {' '.join(argv)}")


def test_notebooks_are_committed_without_outputs():
    import json

    folder = os.path.join(_ROOT, "notebooks")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".ipynb"))
    assert names == ["01_quickstart.ipynb", "02_robust_attribute_privacy.ipynb",
                     "03_model_inversion.ipynb"]
    for name in names:
        book = json.load(open(os.path.join(folder, name), encoding="utf-8"))
        for cell in book["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, name
        assert "RPJAX_NOTEBOOK_PRESET" in json.dumps(book), name
