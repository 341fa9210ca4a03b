"""A model module that exits when imported (`--model tests/_run_models_exit.py:make`)."""

import sys

sys.exit(0)


def make():  # pragma: no cover - never reached
    raise AssertionError
