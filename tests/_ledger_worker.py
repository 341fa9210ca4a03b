"""A process that queries a ledgered release, for `tests/test_ledger.py`.

`python tests/_ledger_worker.py LEDGER CAP TRIES [BLOCK_FLAG]`: builds the release of
`release_under_test(LEDGER, CAP)`, asks `TRIES` one-input queries about subject "s" through a
bound querier and prints one JSON line `{"answered": k, "refused": r, "nonces": [...]}`. With
`BLOCK_FLAG`, the model writes that file on its first noisy evaluation and then sleeps (the
parent kills the process there, between reservation and answer). The ledger's durability is
`$RPJAX_TEST_DURABILITY` (default "full"). With `$RPJAX_TEST_GO` set to a path, the worker
compiles (one answer about a subject of its own), writes `GO.<pid>` and waits for the file
`GO` before its queries (so that the parent can start all workers' queries together).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from rpjax import SmoothingConfig
from rpjax.privacy import Budget, BudgetExceededError, ReleaseConfig, RobustPrivacyRelease, Secret

SECRET = Secret(bytes(range(32)))
CONFIG = ReleaseConfig(smoothing=SmoothingConfig(sigma=0.5, n=16),
                       num_classes=2, mode="always_label")
_FLAG: list[str] = []


def linear(params, x):
    """`tests/test_release.py`'s two-class linear model: logits (-x_0, x_0) * params."""
    return jnp.stack([-x[:, 0], x[:, 0]], axis=-1) * params


def _block(_):
    with open(_FLAG[0], "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    time.sleep(600)


def blocking_linear(params, x):
    """`linear` that, inside the compiled program, signals and then blocks."""
    jax.debug.callback(_block, x.shape[0])
    return linear(params, x)


def release_under_test(ledger: str, cap: int, apply_fn=linear,
                       durability: str = "full") -> RobustPrivacyRelease:
    return RobustPrivacyRelease(apply_fn, 1.0, CONFIG, budget=Budget(max_answers=cap),
                                secret=SECRET, ledger=ledger, durability=durability)


def main(argv: list[str]) -> None:
    ledger, cap, tries = argv[0], int(argv[1]), int(argv[2])
    apply_fn = linear
    if len(argv) > 3:
        _FLAG.append(argv[3])
        apply_fn = blocking_linear
    release = release_under_test(ledger, cap, apply_fn,
                                 os.environ.get("RPJAX_TEST_DURABILITY", "full"))
    ask = release.querier("s")
    x = np.zeros((1, 3), np.float32)
    go = os.environ.get("RPJAX_TEST_GO")
    if go:  # compile on a subject of its own, say so, then wait for the common start
        release.querier(f"warm-up-{os.getpid()}")(x)
        with open(f"{go}.{os.getpid()}", "w", encoding="utf-8"):
            pass
        while not os.path.exists(go):
            time.sleep(0.005)
    answered = refused = 0
    for _ in range(tries):
        try:
            ask(x)
            answered += 1
        except BudgetExceededError:
            refused += 1
    nonces = [int(n) for rec in release.audit()
              for n, who in zip(rec.nonce, rec.subjects, strict=True) if who == "s"]
    print(json.dumps({"answered": answered, "refused": refused, "nonces": nonces}))


if __name__ == "__main__":
    main(sys.argv[1:])
