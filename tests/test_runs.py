"""`rpjax certify` / `rpjax summarize`: durable runs that resume, refuse and scale out.

Every check compares rows with a reference that cannot share the bug under test: the rows of
`rpjax.certify` called once on the whole data set with the same key and ids, or the rows of an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import jax
import numpy as np
import pytest

import rpjax
from rpjax._src import cli, runs

import _run_models as models

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
MODEL = os.path.join(TESTS, "_run_models.py")
DETERMINISTIC = ("index", "block", "label", "predict", "correct", "radius", "pa_lower", "top",
                 "count", "n", "counts")


def _cli(*argv: str) -> int:
    return cli.main(list(argv))


def _certify_args(data, out, *extra, model="linear", sigma="0.5", n="400", block="4"):
    return ["certify", "--model", f"{MODEL}:{model}", "--data", str(data), "--sigma", sigma,
            "--n", n, "--n0", "20", "--block", block, "--out", str(out), "--no-progress",
            *extra]


def _rows(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "rows.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _deterministic(rows):
    return [{k: r[k] for k in DETERMINISTIC} for r in rows]


def _env(**extra):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **extra}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS, env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return models.data(str(tmp_path_factory.mktemp("data") / "d.npz"), 30)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run (blocks of 4) of the linear model on the 30 inputs."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert _cli(*_certify_args(data, out)) == 0
    return out


def test_rows_equal_one_certify_call_on_the_whole_data(data, reference):
    """Each row is what `rpjax.certify` gives that input with its index as id, whatever block
    it was certified in."""
    z = np.load(data)
    apply_fn, params = models.linear()
    cert = rpjax.certify(apply_fn, params, z["x"], jax.random.key(0), num_classes=3,
                         ids=np.arange(30),
                         config=rpjax.SmoothingConfig(sigma=0.5, n=400, n0=20, alpha=1e-3))
    rows = _rows(reference)
    assert [r["index"] for r in rows] == list(range(30))
    np.testing.assert_array_equal([r["predict"] for r in rows], cert.label)
    np.testing.assert_array_equal([r["radius"] for r in rows], cert.radius)
    np.testing.assert_array_equal([r["pa_lower"] for r in rows], cert.pa_lower)
    dense = np.zeros((30, 3), np.int64)
    for i, r in enumerate(rows):
        for c, k in r["counts"]:
            dense[i, c] = k
    np.testing.assert_array_equal(dense, cert.counts)
    np.testing.assert_array_equal([r["label"] for r in rows], z["y"])
    summary = json.load(open(os.path.join(reference, "summary.json")))
    assert summary["complete"] and summary["inputs"] == 30
    correct = np.array([r["correct"] for r in rows]) & (cert.label >= 0)
    assert summary["certified_accuracy"][0]["fraction"] == pytest.approx(correct.mean())
    assert summary["average_certified_radius"] == pytest.approx(
        float(np.mean(cert.radius * correct)))
    assert os.path.getsize(os.path.join(reference, "certified_accuracy.png")) > 1000


def test_rows_do_not_depend_on_the_block_size(data, tmp_path):
    """Blocks of 7 (an uneven last block) and one block of 30 give the same rows (the device
    and process count are the 2-process test's)."""
    out = tmp_path / "b7"
    config, apply_fn, params, inputs, labels = runs.make_config(
        model=f"{MODEL}:linear", data=data, sigma=0.5, n0=20, n=400, alpha=1e-3, block=7)
    runs.certify_run(config, str(out), apply_fn, params, inputs, labels,
                     devices=jax.local_devices()[:1], progress=False)
    ref = runs.make_config(model=f"{MODEL}:linear", data=data, sigma=0.5, n0=20, n=400,
                           alpha=1e-3, block=30)
    runs.certify_run(ref[0], str(tmp_path / "b30"), *ref[1:], progress=False)
    cols = [k for k in DETERMINISTIC if k != "block"]
    assert [{k: r[k] for k in cols} for r in _rows(out)] == [
        {k: r[k] for k in cols} for r in _rows(tmp_path / "b30")]


def _committed(part, config):
    return runs.scan_part(part, config).blocks


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(data, reference, tmp_path, sig):
    """kill -9 (or SIGTERM) after some blocks are committed; rerunning the same command
    finishes the run: no input missing, none twice, the same counts and radii."""
    out = tmp_path / "run"
    argv = _certify_args(data, out, model="slow")
    proc = subprocess.Popen([sys.executable, "-m", "rpjax._src.cli", *argv],
                            env=_env(RPJAX_TEST_SLEEP="0.05"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    part = runs.part_path(str(out), 0)
    deadline = time.time() + 120
    config = None
    while time.time() < deadline and proc.poll() is None:
        if config is None and os.path.isfile(out / "config.json"):
            config = runs.read_config(str(out))
        if config is not None and len(_committed(part, config)) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(sig)
    rc = proc.wait()
    if sig == signal.SIGTERM:  # stops like Ctrl-C: one line, exit 130
        err = proc.stderr.read()
        assert rc == 130 and b"interrupted; committed work is kept" in err, err[-1500:]
    done = _committed(part, config)
    assert 2 <= len(done) < config.num_blocks, "the kill must land mid-run"
    assert not os.path.exists(out / "summary.json")
    # rerun the same command (no --resume needed); the slow model's rows equal the fast one's
    assert _cli(*argv) == 0
    rows = _rows(out)
    assert [r["index"] for r in rows] == list(range(30))
    assert _deterministic(rows) == _deterministic(_rows(reference))
    # the part file holds each block once
    with open(part, encoding="utf-8") as f:
        indices = [json.loads(line)["index"] for line in f]
    assert sorted(indices) == list(range(30))


def test_a_torn_block_is_discarded_on_resume(data, reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    for name in ("rows.jsonl", "summary.json", "certified_accuracy.png"):
        os.remove(out / name)
    part = runs.part_path(str(out), 0)
    blob = open(part, "rb").read()
    lines = blob.split(b"\n")
    # cut in the middle of the 14th row: blocks 0-2 (rows 0-11) stay committed, block 3 is torn
    cut = len(b"\n".join(lines[:13])) + 1 + len(lines[13]) // 2
    with open(part, "rb+") as f:
        f.truncate(cut)
    config = runs.read_config(str(out))
    scan = runs.scan_part(part, config)
    assert sorted(scan.blocks) == [0, 1, 2]
    assert scan.committed_bytes == len(b"\n".join(lines[:12])) + 1 < scan.size
    assert _cli("certify", "--resume", "--out", str(out), "--no-progress") == 0
    assert _deterministic(_rows(out)) == _deterministic(_rows(reference))
    with open(part, encoding="utf-8") as f:  # the torn tail was cut off, not kept
        assert sorted(json.loads(line)["index"] for line in f) == list(range(30))


def test_garbage_after_the_last_block_is_cut_off(data, reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    part = runs.part_path(str(out), 0)
    with open(part, "ab") as f:
        f.write(b'{"index": 0, "block": 0, "lab')
    config = runs.read_config(str(out))
    assert len(runs.scan_part(part, config).blocks) == config.num_blocks
    assert _cli(*_certify_args(data, out)) == 0
    assert _deterministic(_rows(out)) == _deterministic(_rows(reference))
    assert open(part, "rb").read().endswith(b"\n")


def test_a_changed_configuration_is_refused(data, reference, tmp_path, capsys):
    before = sorted(os.listdir(reference))
    parts = open(runs.part_path(str(reference), 0), "rb").read()
    assert _cli(*_certify_args(data, reference, sigma="0.25")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different configuration" in err
    assert "sigma 0.5 -> 0.25" in err
    # the same path with other contents: refused by the data hash
    other = tmp_path / "d.npz"
    models.data(str(other), 30, seed=1)
    moved = tmp_path / "run"
    import shutil

    shutil.copytree(reference, moved)
    cfg = json.load(open(moved / "config.json"))
    cfg["data"] = str(other)
    (moved / "config.json").write_text(json.dumps(cfg))
    assert _cli("certify", "--resume", "--out", str(moved), "--no-progress") == 2
    assert "data_sha256" in capsys.readouterr().err
    assert _cli("certify", "--resume", "--out", str(reference), "--n", "800",
                "--no-progress") == 2
    assert "n 400 -> 800" in capsys.readouterr().err
    assert sorted(os.listdir(reference)) == before  # nothing was touched
    assert open(runs.part_path(str(reference), 0), "rb").read() == parts


def test_summarize_rebuilds_the_outputs_from_the_parts(reference, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    expected = json.load(open(out / "summary.json"))
    for name in ("rows.jsonl", "summary.json", "certified_accuracy.png"):
        os.remove(out / name)
    assert _cli("summarize", str(out)) == 0
    assert _rows(out) == _rows(reference)
    assert json.load(open(out / "summary.json")) == expected
    assert "certified accuracy" in capsys.readouterr().out
    # a directory that holds no run: one line naming it, no flag the command does not take
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli("summarize", str(empty)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rpjax: error: {empty}: no rpjax certify run there (no config.json).", err


def test_checkpoint_and_compressed_npz(data, tmp_path, capsys):
    """--checkpoint restores other weights (the rows are those of certify with them); a
    compressed .npz is read too; a checkpoint that does not fit is one line."""
    import orbax.checkpoint as ocp

    w, b = models.linear()[1]
    other = (-w, b + 0.5)
    ckpt = str(tmp_path / "ckpt")
    saver = ocp.StandardCheckpointer()
    saver.save(ckpt, other)
    saver.wait_until_finished()
    z = np.load(data)
    np.savez_compressed(tmp_path / "c.npz", x=z["x"][:8], y=z["y"][:8])
    out = tmp_path / "run"
    # restoring builds the abstract tree without np.result_type(array) (a DeprecationWarning)
    from rpjax._src.runs.model import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        load_model(f"{models.__file__}:linear", ckpt)
    assert _cli(*_certify_args(tmp_path / "c.npz", out, "--checkpoint", ckpt)) == 0
    cert = rpjax.certify(models.linear_apply, other, z["x"][:8], jax.random.key(0), num_classes=3,
                         ids=np.arange(8),
                         config=rpjax.SmoothingConfig(sigma=0.5, n=400, n0=20, alpha=1e-3))
    rows = _rows(out)
    np.testing.assert_array_equal([r["predict"] for r in rows], cert.label)
    np.testing.assert_array_equal([r["radius"] for r in rows], cert.radius)
    config = runs.read_config(str(out))
    provenance = config.provenance
    assert provenance.checkpoint_sha256
    assert provenance.model_sha256 != runs.params_sha256(models.linear()[1])
    bad = str(tmp_path / "bad")
    saver.save(bad, (w[:2], b))
    saver.wait_until_finished()
    assert _cli(*_certify_args(tmp_path / "c.npz", tmp_path / "r2", "--checkpoint", bad)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rpjax: error: --checkpoint"), err


def test_npy_without_labels_nnx_factory_and_sequential(tmp_path):
    x = np.load(models.data(str(tmp_path / "d.npz"), 12))["x"]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "run"
    assert _cli(*_certify_args(tmp_path / "x.npy", out, model="module")) == 0
    rows = _rows(out)
    assert all(r["label"] is None and r["correct"] is None for r in rows)
    summary = json.load(open(out / "summary.json"))
    assert not summary["labels"] and "certified_fraction" in summary
    # the NNX factory computes the same function as the (apply_fn, params) one
    ref = tmp_path / "ref"
    assert _cli(*_certify_args(tmp_path / "x.npy", ref)) == 0
    assert _deterministic(rows) == _deterministic(_rows(ref))
    seq = tmp_path / "seq"
    assert _cli(*_certify_args(tmp_path / "x.npy", seq, "--method", "sequential",
                               "--radius", "0.2", n="2000")) == 0
    srows = _rows(seq)
    assert {r["decision"] for r in srows} <= {-1, 0, 1}
    assert all(r["n"] <= 2000 for r in srows)
    assert all((r["radius"] >= 0.2) == (r["decision"] == 1) for r in srows)
    # what the summary says of a decision at r: r was the only radius tested
    ssum = json.load(open(seq / "summary.json"))
    assert [p["radius"] for p in ssum["certified_fraction"]] == [0.2]
    assert ssum["certified_fraction"][0]["fraction"] == pytest.approx(
        np.mean([r["decision"] == 1 for r in srows]))
    assert ssum["average_certified_radius"] is None and "decision at r = 0.2" in ssum["question"]
    assert ssum["decision"]["certified"] == sum(r["decision"] == 1 for r in srows)
    assert "forward_passes" in ssum["samples"]["note"]
    # the radius with a budget: the curve over radii, and how much it saved
    bud = tmp_path / "bud"
    assert _cli(*_certify_args(tmp_path / "x.npy", bud, "--method", "sequential",
                               n="2000")) == 0
    bsum = json.load(open(bud / "summary.json"))
    assert len(bsum["certified_fraction"]) > 1 and bsum["average_certified_radius"] is not None
    assert "price" in bsum["question"] and "fewer samples than fixed n" in bsum["question"]


def test_the_plot_of_a_partial_run_and_of_a_decision_says_so(tmp_path, monkeypatch):
    """The plot's title: "k of N inputs (partial)" for a partial run, the tested r for a
    decision at r."""
    import matplotlib.axes

    from rpjax._src.runs import DataSpec, ModelSpec, Provenance, RunSpec
    from rpjax._src.runs import summary as _summary

    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda self, t, *a, **k: titles.append(t) or real(self, t, *a, **k))
    spec = RunSpec(model=ModelSpec(factory="m:f", num_classes=2),
                   data=DataSpec(path="/d.npy", num_inputs=200, input_shape=(2,),
                                 input_dtype="float32"),
                   smoothing=rpjax.SmoothingConfig(sigma=0.5, n=100),
                   provenance=Provenance(model_sha256="a", data_sha256="b"))
    cols = _summary.Columns(radius=np.full(48, 0.1), certified=np.ones(48, bool),
                            ok=np.ones(48, bool), used=np.full(48, 200),
                            decision=np.ones(48, np.int8), blocks={0}, labels=True)
    _summary.plot_summary(spec, cols, str(tmp_path / "a.png"))
    decide = dataclasses.replace(spec, rule=rpjax.DecideAt(0.25))
    _summary.plot_summary(decide, cols, str(tmp_path / "b.png"))
    assert "48 of 200 inputs (partial)" in titles[0]
    assert titles[1].startswith("decision at r = 0.25") and "(partial)" in titles[1]


def test_unwritable_out_fails_at_once(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        t0 = time.perf_counter()
        assert _cli(*_certify_args(tmp_path / "d.npz", out)) == 2
        assert time.perf_counter() - t0 < 1.0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err, err
    assert _cli("certify", "--resume", "--out", str(tmp_path / "nothing")) == 2
    assert "no rpjax certify run" in capsys.readouterr().err


def test_a_directory_that_is_not_a_run_is_refused(data, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert _cli(*_certify_args(data, tmp_path)) == 2
    assert "not empty and holds no rpjax certify run" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_with_jax_distributed_equal_one(data, reference, tmp_path):
    """2 CPU processes (2 simulated devices each) on jax.distributed: each certifies its share
    of blocks into its own part file; process 0 merges. Rows equal the single-process run's."""
    out = tmp_path / "run"
    port = _free_port()
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "rpjax._src.cli",
         *_certify_args(data, out, "--coordinator", f"127.0.0.1:{port}", "--num-processes",
                        "2", "--process-id", str(k))],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]
    assert _deterministic(_rows(out)) == _deterministic(_rows(reference))
    config = runs.read_config(str(out))
    shares = [set(runs.scan_part(runs.part_path(str(out), k), config).blocks) for k in (0, 1)]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(range(config.num_blocks))
    times = [json.loads(line) for k in (0, 1)
             for line in open(runs.part_path(str(out), k, "times"))]
    assert {t["devices"] for t in times} == {2}
    t = json.load(open(out / "summary.json"))["throughput"]
    slowest = max(sum(x["seconds"] for x in times if x["process"] == k) for k in (0, 1))
    assert t["processes"] == 2
    assert t["job_forward_passes_per_second"] == pytest.approx(
        sum(x["forward_passes"] for x in times) / slowest)


RSS_SCRIPT = """
import sys
import numpy as np
from rpjax._src import runs
config, apply_fn, params, inputs, labels = runs.make_config(
    model={model!r}, data=sys.argv[1], sigma=0.5, n0=1, n=2, alpha=0.1, block=5000)
runs.certify_run(config, sys.argv[2], apply_fn, params, inputs, labels, progress=False,
                 chunk_size=4096)
# VmHWM, this process's own peak (ru_maxrss would inherit the forking parent's, across exec)
print(next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:")))
"""


@pytest.mark.slow
def test_a_memory_mapped_data_set_streams_with_bounded_memory(tmp_path):
    """10^5 inputs of 512 float32 (205 MB) stream through a run (blocks of 5000) whose peak RSS
    exceeds that of a run on 2 * 10^4 inputs by less than half the extra data: a block at a
    time is resident, never the data set (were it, the excess would be >= the extra data)."""
    def peak(num, name):
        x = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=np.float32,
                                      shape=(num, 512))
        x[:] = 0.01
        x.flush()
        del x
        proc = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT.format(model=f"{MODEL}:wide"),
             str(tmp_path / f"{name}.npy"), str(tmp_path / f"{name}-run")],
            env=_env(), capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(tmp_path / f"{name}-run" / "rows.jsonl", encoding="utf-8") as f:
            assert [json.loads(line)["index"] for line in f] == list(range(num))
        return int(proc.stdout.strip().splitlines()[-1]) * 1024  # VmHWM is in KiB

    small, large = peak(20_000, "small"), peak(100_000, "large")
    more = (100_000 - 20_000) * 512 * 4  # 164 MB more data, the same block size
    print("peak RSS, MB:", small / 2**20, large / 2**20)
    assert large - small < more / 2, (small, large)


@pytest.mark.slow
def test_a_seed_keeps_all_64_bits_as_in_the_api(tmp_path):
    """`--seed 2**32` is `rpjax.certify(key=2**32)`, not seed 0 cut to 32 bits (2**63 too)."""
    data = models.data(str(tmp_path / "d.npz"), 8)
    x = np.load(data)["x"]
    apply_fn, params = models.linear()
    for seed in (2**32, 2**63 + 5):
        out = tmp_path / f"s{seed}"
        assert _cli(*_certify_args(data, out, "--seed", str(seed), block="8")) == 0
        cert = rpjax.certify(apply_fn, params, x, seed, num_classes=3, ids=np.arange(8),
                             config=rpjax.SmoothingConfig(sigma=0.5, n=400, n0=20, alpha=1e-3))
        counts = [dict(r["counts"]) for r in _rows(out)]
        assert counts == [{c: int(k) for c, k in enumerate(row) if k} for row in cert.counts]
        zero = rpjax.certify(apply_fn, params, x, 0, num_classes=3, ids=np.arange(8),
                             config=rpjax.SmoothingConfig(sigma=0.5, n=400, n0=20, alpha=1e-3))
        assert not np.array_equal(cert.counts, zero.counts)


@pytest.mark.slow
def test_a_write_failure_is_one_line_and_the_run_resumes(data, reference, tmp_path):
    """A file-size limit (as a full disk) hit mid-run: one line saying the committed blocks
    are kept, then the same command resumes to the uninterrupted run's rows."""
    out = tmp_path / "run"
    argv = _certify_args(data, out)
    limit = ("import resource, signal, sys, runpy; "
             "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             "resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000)); "
             "sys.argv = ['rpjax'] + sys.argv[1:]; "
             "runpy.run_module('rpjax._src.cli', run_name='__main__')")
    # without the tests' persistent compilation cache, whose writes would also hit the limit
    # (a warning line of JAX's, on whichever run first compiles a program)
    env = _env(PYTHONDONTWRITEBYTECODE="1", JAX_ENABLE_COMPILATION_CACHE="false")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, "-c", limit, *argv], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-3000:]
    assert len(err.splitlines()) == 1, err[-3000:]
    assert "writing the run failed" in err and "committed blocks are kept" in err, err
    config = runs.read_config(str(out))
    assert 1 <= len(_committed(runs.part_path(str(out), 0), config)) < config.num_blocks
    assert _cli(*argv) == 0
    assert _deterministic(_rows(out)) == _deterministic(_rows(reference))


def test_a_data_file_rewritten_during_the_run_is_refused(data, reference, tmp_path, capsys,
                                                         monkeypatch):
    """The data file is rewritten while block 1 is certified: the run stops with one line,
    block 0 (certified from the old file) is kept, and a resume with the new file is refused
    (its hash differs)."""
    import shutil

    copy = tmp_path / "d.npz"
    shutil.copy(data, copy)
    out = tmp_path / "run"
    monkeypatch.setenv("RPJAX_TEST_DATA", str(copy))
    monkeypatch.setenv("RPJAX_TEST_PART", runs.part_path(str(out), 0))
    argv = _certify_args(copy, out, model="rewrites_later")
    assert _cli(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rewritten or replaced during the run" in err, err
    config = runs.read_config(str(out))
    part = runs.part_path(str(out), 0)
    assert set(_committed(part, config)) == {0}
    with open(part, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert _deterministic(rows) == _deterministic(_rows(reference))[:4]
    assert _cli(*argv) == 2
    assert "data_sha256" in capsys.readouterr().err


@pytest.mark.slow
def test_a_second_writer_on_the_same_out_is_refused(data, reference, tmp_path, capsys):
    """Two `rpjax certify` on one --out: the second is refused with one line naming the run
    directory and writes nothing; the first completes with the uninterrupted run's rows."""
    out = tmp_path / "run"
    go = tmp_path / "go"
    argv = _certify_args(data, out, model="waits")
    proc = subprocess.Popen([sys.executable, "-m", "rpjax._src.cli", *argv],
                            env=_env(RPJAX_TEST_GO=str(go)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not os.path.isfile(out / "config.json") and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.02)

        def listing():
            return sorted((os.path.relpath(os.path.join(d, f), out),
                           os.path.getsize(os.path.join(d, f)))
                          for d, _, fs in os.walk(out) for f in fs)

        before = listing()
        assert _cli(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"--out {out}: another rpjax certify is writing" in err, err
        assert listing() == before
    finally:
        go.touch()
        rc = proc.wait(timeout=300)
    assert rc == 0, proc.stderr.read().decode()[-2000:]
    assert _deterministic(_rows(out)) == _deterministic(_rows(reference))


def test_run_spec_is_frozen_keyword_only_and_validated_in_library_words():
    from rpjax._src.runs import DataSpec, ModelSpec, Provenance, RunSpec

    parts = dict(model=ModelSpec(factory="m:f", num_classes=3),
                 data=DataSpec(path="/d.npy", num_inputs=5, input_shape=(2,),
                               input_dtype="float32"),
                 smoothing=rpjax.SmoothingConfig(sigma=0.5),
                 provenance=Provenance(model_sha256="a", data_sha256="b"))
    spec = RunSpec(**parts, rule=rpjax.DecideAt(0.25), seed=2**63, block=2)
    assert (spec.method, spec.radius, spec.price, spec.num_blocks) == ("sequential", 0.25,
                                                                          None, 3)
    assert RunSpec.from_json(spec.to_json()) == spec  # config.json round trip
    with pytest.raises(TypeError):
        RunSpec(parts["model"], parts["data"], parts["smoothing"], parts["provenance"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 1
    for bad, error, match in [(dict(seed=2**64), ValueError, "^seed "),
                              (dict(seed=-1), ValueError, "^seed must"),
                              (dict(block=0), ValueError, "^block must"),
                              (dict(rule="sequential"), TypeError, "^rule must"),
                              (dict(smoothing=dict(sigma=0.5)), TypeError, "^smoothing must")]:
        with pytest.raises(error, match=match):
            RunSpec(**{**parts, **bad})


def test_the_cli_defaults_are_the_dataclass_defaults():
    from rpjax._src import cli
    from rpjax._src.runs import RunSpec

    defaults = cli.certify_defaults()
    smoothing = {f.name: f.default for f in dataclasses.fields(rpjax.SmoothingConfig)}
    spec = {f.name: f.default for f in dataclasses.fields(RunSpec)}
    assert (defaults["n0"], defaults["n"], defaults["alpha"]) == (
        smoothing["n0"], smoothing["n"], smoothing["alpha"])
    assert (defaults["seed"], defaults["block"]) == (spec["seed"], spec["block"])
    assert spec["rule"] == rpjax.Fixed() and defaults["method"] == "cohen"
