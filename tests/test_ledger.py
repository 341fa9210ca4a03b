"""The release's durable ledger (`rpjax._src.privacy.ledger`): a budget that holds under
threads, processes, restarts, SIGKILL and failing queries, tried as an attacker would.

Each test counts answers the way a querier sees them (labels returned vs
`BudgetExceededError`) and checks the ledger file itself with a separate `sqlite3`
connection.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _ledger_worker import CONFIG, SECRET, linear, release_under_test

from rpjax import SmoothingConfig
from rpjax._src.privacy import ledger as ledger_lib
from rpjax.privacy import (
    Budget,
    BudgetExceededError,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
)

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ledger_worker.py")
_X0 = np.zeros((1, 3), np.float32)  # p_1 = 1/2: each answer's counts are pure noise


def _file_states(path: str) -> dict[str, int]:
    """Rows per state, read from the file with a connection of the test's own."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM answers GROUP BY state"))


def _file_nonces(path: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [int(r[0]) % 2**64 for r in conn.execute("SELECT nonce FROM answers")]


def _hammer(ask, threads: int, per_thread: int = 1) -> tuple[int, int]:
    """`threads` threads released together, each calling `ask(_X0)` `per_thread` times:
    (answered, refused)."""
    start = threading.Barrier(threads)
    answered, refused, errors = [], [], []

    def run():
        start.wait()
        for _ in range(per_thread):
            try:
                ask(_X0)
                answered.append(1)
            except BudgetExceededError:
                refused.append(1)
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    return len(answered), len(refused)


def test_sixteen_threads_on_one_subject_get_exactly_the_cap(tmp_path):
    path = str(tmp_path / "l.sqlite")
    rel = release_under_test(path, cap=3)
    rel.querier("warm-up")(_X0)  # compiles once, before the race
    answered, refused = _hammer(rel.querier("s"), threads=16, per_thread=2)
    assert (answered, refused) == (3, 29)
    assert rel.answers("s") == 3
    assert _file_states(path) == {"answered": 4}  # 3 for "s", 1 for "warm-up"
    nonces = [int(n) for rec in rel.audit() for n in rec.nonce]
    assert len(nonces) == len(set(nonces)) == 4
    assert sorted(nonces) == sorted(_file_nonces(path))


def test_racing_answers_draw_distinct_noise():
    """16 threads, no cap, no ledger: every answer has its own nonce from the (locked)
    counter, so racing answers never share noise."""
    rel = RobustPrivacyRelease(linear, 1.0, CONFIG, budget=Budget.unlimited(), secret=SECRET)
    rel.query(_X0)
    answered, _ = _hammer(lambda x: rel.query(x), threads=16, per_thread=3)
    assert answered == 48
    nonces = sorted(int(n) for rec in rel.audit() for n in rec.nonce)
    assert nonces == list(range(49))


@pytest.mark.slow  # four processes import JAX and compile (about 25 s on 2 cores)
def test_four_processes_on_one_ledger_get_exactly_the_cap(tmp_path):
    path = str(tmp_path / "l.sqlite")
    go = str(tmp_path / "go")
    release_under_test(path, cap=5)  # creates the file (the workers would race to, safely)
    procs = [subprocess.Popen([sys.executable, _WORKER, path, "5", "4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RPJAX_TEST_GO": go})
             for _ in range(4)]
    deadline = time.monotonic() + 240
    while not all(os.path.exists(f"{go}.{p.pid}") for p in procs):  # all compiled
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        time.sleep(0.05)
    open(go, "w").close()  # the common start
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["answered"] for r in results) == 5
    assert sum(r["refused"] for r in results) == 11
    nonces = [n for r in results for n in r["nonces"]]
    assert len(nonces) == len(set(nonces)) == 5
    with sqlite3.connect(path) as conn:
        stored = [int(r[0]) % 2**64 for r in conn.execute(
            "SELECT nonce FROM answers WHERE subject = 's:s' AND state = 'answered'")]
    assert sorted(nonces) == sorted(stored)
    assert _file_states(path) == {"answered": 5 + 4}  # and one warm-up answer per worker


def test_restarts_never_reset_a_budget(tmp_path):
    path = str(tmp_path / "l.sqlite")
    answered = 0
    for _ in range(5):  # five lives: new release object, same secret and ledger
        ask = release_under_test(path, cap=1).querier("s")
        try:
            ask(_X0)
            answered += 1
        except BudgetExceededError as err:
            assert "'s' has had 1 answers" in str(err)
    assert answered == 1
    assert release_under_test(path, cap=1).answers("s") == 1


def test_restarts_never_reuse_noise(tmp_path):
    """Cap 5, one answer per life: five distinct nonces, and (an input with p_1 = 1/2) noise
    that differs between lives; the sixth life is refused."""
    path = str(tmp_path / "l.sqlite")
    nonces, counts = [], []
    for _ in range(5):
        rel = release_under_test(path, cap=5)
        rel.querier("s")(_X0)
        (rec,) = rel.audit()
        nonces.append(int(rec.nonce[0]))
        counts.append(int(rec.counts[0, 1]))
    assert len(set(nonces)) == 5
    assert len(set(counts)) > 1, counts  # all equal would have probability < 1e-3
    with pytest.raises(BudgetExceededError):
        release_under_test(path, cap=5).querier("s")(_X0)
    # a measurement release (counter nonces) is the contrast: every life reuses nonce 0
    lives = []
    for _ in range(2):
        rel = RobustPrivacyRelease(linear, 1.0, CONFIG, budget=Budget.unlimited(),
                                   secret=SECRET)
        rel.query(_X0)
        lives.append(rel.audit()[0])
    assert int(lives[0].nonce[0]) == int(lives[1].nonce[0]) == 0
    np.testing.assert_array_equal(lives[0].counts, lives[1].counts)


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_sigkill_between_reservation_and_answer_counts_as_spent(tmp_path, durability):
    """Both durability settings survive a killed process (they differ on power loss)."""
    path, flag = str(tmp_path / "l.sqlite"), str(tmp_path / "computing")
    release_under_test(path, cap=1, durability=durability)
    proc = subprocess.Popen([sys.executable, _WORKER, path, "1", "1", flag],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "RPJAX_TEST_DURABILITY": durability})
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(flag):  # the model is running: reserved, not answered
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert _file_states(path) == {"reserved": 1}
    rel = release_under_test(path, cap=1, durability=durability)  # reopened after the kill
    assert rel.answers("s") == 1
    with pytest.raises(BudgetExceededError):
        rel.querier("s")(_X0)


_BROKEN = [True]


def _maybe_broken(_):
    if _BROKEN[0]:
        raise RuntimeError("the model failed")


def _breakable_linear(params, x):
    jax.debug.callback(_maybe_broken, x.shape[0])
    return linear(params, x)


def test_a_query_that_raises_releases_its_reservation(tmp_path):
    path = str(tmp_path / "l.sqlite")
    rel = release_under_test(path, cap=1, apply_fn=_breakable_linear)
    ask = rel.querier("s")
    _BROKEN[0] = True
    try:
        with pytest.raises(Exception, match="the model failed"):
            ask(_X0)
        assert rel.answers("s") == 0
        assert _file_states(path) == {"released": 1}
        (burned,) = _file_nonces(path)
        _BROKEN[0] = False
        ask(_X0)
    finally:
        _BROKEN[0] = False
    assert rel.answers("s") == 1
    assert _file_states(path) == {"released": 1, "answered": 1}
    assert int(rel.audit()[0].nonce[0]) != burned  # the burned nonce is never reused


@pytest.mark.parametrize("subject", [None, float("nan"), 1.5, ("a", 1), True, np.bool_(False),
                                     b"alice"])
def test_a_querier_is_bound_to_a_str_or_int_subject(tmp_path, subject):
    rel = release_under_test(str(tmp_path / "l.sqlite"), cap=1)
    with pytest.raises(TypeError, match="subject must be a str or an int"):
        rel.querier(subject)
    with pytest.raises(TypeError, match="subjects must be a str or an int"):
        rel.query(_X0, [subject])


def test_every_known_bypass_answers_at_most_the_cap(tmp_path):
    rel = release_under_test(str(tmp_path / "l.sqlite"), cap=1)
    # 300 queries with subjects=[None] (was: never counted): all refused
    for _ in range(300):
        with pytest.raises(TypeError):
            rel.query(_X0, [None])
    # NaN as a subject (was: a new subject every time)
    for _ in range(5):
        with pytest.raises(TypeError):
            rel.query(_X0, [float("nan")])
    # a bound querier has no way to name a subject (was: invented names, 24,000 answers)
    ask = rel.querier("alice")
    with pytest.raises(TypeError):
        ask(_X0, ["mallory"])  # pylint: disable=too-many-function-args
    rel.querier("bob")(_X0)
    answered = 0
    for _ in range(300):
        try:
            ask(_X0)
            answered += 1
        except BudgetExceededError as err:
            assert "bob" not in str(err)  # a refusal tells only about its own subject
            assert "'alice' has had 1 answers" in str(err)
    assert answered == 1
    assert _file_states(str(tmp_path / "l.sqlite")) == {"answered": 2}
    # an id is its type and value: numpy and Python integers are one subject, "7" another
    rel.querier(np.int64(7))(_X0)
    with pytest.raises(BudgetExceededError):
        rel.querier(7)(_X0)
    rel.querier("7")(_X0)
    assert (rel.answers(7), rel.answers("7")) == (1, 1)


def test_answer_i_is_the_traced_release_at_its_nonce(tmp_path):
    """A ledgered release's answer i equals `traced()` on that input at state = nonce_i."""
    for mode in ("predict", "always_label", "certify"):
        cfg = ReleaseConfig(smoothing=SmoothingConfig(sigma=0.5, n=64, n0=8),
                            num_classes=2, mode=mode)
        rel = RobustPrivacyRelease(linear, 1.0, cfg, budget=Budget(max_answers=10),
                                   secret=SECRET, ledger=str(tmp_path / f"{mode}.sqlite"))
        xs = np.linspace(-0.3, 0.3, 6, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
        labels = rel.query(xs, ["a", "b", "a", "c", "b", "a"])
        (rec,) = rel.audit()
        traced = rel.traced()
        for i, nonce in enumerate(rec.nonce.tolist()):
            state = jnp.array([nonce & 0xFFFFFFFF, nonce >> 32], jnp.uint32)
            got, after = traced(jnp.asarray(xs[i : i + 1]), state)
            assert int(got[0]) == int(labels[i]), (mode, i)
            assert int(after[0]) == (nonce + 1) & 0xFFFFFFFF
        assert len(set(rec.nonce.tolist())) == 6
        assert {-1, 0, 1} & set(labels.tolist())


def test_a_ledger_refuses_another_release(tmp_path):
    path = str(tmp_path / "l.sqlite")
    release_under_test(path, cap=2).querier("s")(_X0)
    with pytest.raises(ValueError, match="ledger=.*secret_fingerprint"):
        RobustPrivacyRelease(linear, 1.0, CONFIG, budget=Budget(max_answers=2),
                             secret=Secret(bytes(32)), ledger=path)
    with pytest.raises(ValueError,
                       match=r"ledger=.*config\.smoothing\.n \(16 in the ledger, 17 here\)"):
        RobustPrivacyRelease(linear, 1.0, ReleaseConfig(smoothing=SmoothingConfig(sigma=0.5, n=17),
                                                        num_classes=2, mode="always_label"),
                             budget=Budget(max_answers=2), secret=SECRET, ledger=path)
    with pytest.raises(ValueError, match=r"ledger=.*budget\.max_answers"):
        release_under_test(path, cap=3)
    assert release_under_test(path, cap=2).answers("s") == 1  # the same release reopens


def test_a_nonce_collision_is_redrawn(tmp_path, monkeypatch):
    drawn = iter([5, 5, 2**64 - 1])
    monkeypatch.setattr(ledger_lib, "draw_nonce", lambda: next(drawn))
    rel = release_under_test(str(tmp_path / "l.sqlite"), cap=3)
    ask = rel.querier("s")
    ask(_X0)
    ask(_X0)
    assert [int(r.nonce[0]) for r in rel.audit()] == [5, 2**64 - 1]  # 5 again: redrawn


def test_durability_settings(tmp_path):
    full = release_under_test(str(tmp_path / "full.sqlite"), cap=1)
    normal = RobustPrivacyRelease(linear, 1.0, CONFIG, budget=Budget(max_answers=1),
                                  secret=SECRET, ledger=str(tmp_path / "normal.sqlite"),
                                  durability="normal")
    for rel, level in ((full, 2), (normal, 1)):  # SQLite: FULL = 2, NORMAL = 1
        conn = rel._book._conn()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ValueError, match="durability"):
        RobustPrivacyRelease(linear, 1.0, CONFIG, secret=SECRET,
                             ledger=str(tmp_path / "y.sqlite"), durability="off")


def test_a_forked_child_opens_its_own_connection(tmp_path):
    """The ledger object inherited through `fork` reserves through a new connection."""
    book = ledger_lib.Ledger(str(tmp_path / "l.sqlite"), {"release": "test"})
    book.reserve(["s:a"], cap=2, alpha_each=0.0)
    parent_conn = book._conn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX warns that fork and threads do not mix
        pid = os.fork()
    if pid == 0:  # the child: no JAX, only the ledger
        try:
            ok = book._conn() is not parent_conn
            book.reserve(["s:a"], cap=2, alpha_each=0.0)
            os._exit(0 if ok else 3)
        except BaseException:  # noqa: BLE001
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert book.answers("s:a") == 2
    with pytest.raises(ledger_lib.LedgerBudgetExceeded):
        book.reserve(["s:a"], cap=2, alpha_each=0.0)
