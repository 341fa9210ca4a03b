"""Bad input at the public boundary raises a named ValueError / TypeError."""

import numpy as np
import pytest

import rpjax
from rpjax.models import as_apply_fn

from _models import linear_apply, plan, random_linear

_PARAMS = random_linear(3, seed=0)
_XS = np.ones((4, 3), np.float32)


# The table of bad inputs (certify's arguments, model outputs, statistics, the CLI) is
# `tests/test_bad_inputs.py`; these are the checks shared by the other entry points.


@pytest.mark.parametrize("name", ["predict", "sample_counts", "always_label"])
def test_other_entry_points_validate(name):
    fn = getattr(rpjax, name)
    kw = dict(sigma=0.5, n=100, num_classes=2)
    if name == "predict":
        kw["alpha"] = 1e-3
    with pytest.raises(ValueError, match="sigma"):
        fn(linear_apply, _PARAMS, _XS, 0, **plan(**{**kw, "sigma": 0.0}))
    with pytest.raises(ValueError, match="xs"):
        fn(linear_apply, _PARAMS, np.zeros((0, 3), np.float32), 0, **plan(**kw))
    with pytest.raises(TypeError, match="n must be an integer"):
        fn(linear_apply, _PARAMS, _XS, 0, **plan(**{**kw, "n": 10.5}))


def test_as_apply_fn_needs_a_module():
    with pytest.raises(TypeError, match="model"):
        as_apply_fn(lambda x: x)
