"""The README's example code runs, and its CLI reference matches the parser."""

import os
import re

from rpjax import cli

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_README = open(os.path.join(_ROOT, "README.md"), encoding="utf-8").read()


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
    for argv in (["--help"], ["reproduce", "--help"], ["certify-demo", "--help"]):
        text = _help(argv, monkeypatch, capsys)
        assert text and text in _README, (
            f"README's `rpjax {' '.join(argv)}` block is out of date; regenerate it with "
            f"COLUMNS=100 rpjax {' '.join(argv)}")
