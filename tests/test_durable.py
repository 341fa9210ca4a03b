"""Durable output: atomic writes survive exceptions and kill -9, every writer goes through them,
a corrupted trained-model cache entry is retrained, bad destinations fail at once, and a run
directory is refused or overwritten, never mixed (issue 15, point 5)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np
import pytest

from rpjax._src import cli, durable
from rpjax._src.experiments import checkpoint, common, outdir

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DURABLE = os.path.join(_ROOT, "rpjax", "_src", "durable.py")


def _visible(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def _tree(folder) -> list[tuple[str, int]]:
    out = []
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            out.append((os.path.relpath(p, folder), os.path.getsize(p)))
    return sorted(out)


# --- atomic_write / atomic_path ---------------------------------------------------------------


@pytest.mark.parametrize("previous", [b"the previous complete file\n" * 1000, None])
def test_an_exception_mid_write_leaves_the_previous_file_or_none(tmp_path, previous):
    dest = tmp_path / "out.csv"
    if previous is not None:
        dest.write_bytes(previous)
    with pytest.raises(RuntimeError, match="interrupted"), durable.atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half of the new file")
        raise RuntimeError("interrupted")
    if previous is None:
        assert not dest.exists()
    else:
        assert dest.read_bytes() == previous
    assert os.listdir(tmp_path) == ([] if previous is None else ["out.csv"])  # no temp left
    durable.atomic_write(dest, "new\n")
    assert dest.read_text() == "new\n" and os.listdir(tmp_path) == ["out.csv"]


def test_files_get_the_permissions_a_plain_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        durable.atomic_write(tmp_path / "new.json", "{}")
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
        (tmp_path / "kept.csv").write_text("old")
        os.chmod(tmp_path / "kept.csv", 0o604)
        durable.atomic_write(tmp_path / "kept.csv", "new")
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE(os.stat(tmp_path / name).st_mode)  # noqa: E731
    assert mode("new.json") == mode("plain.json") == 0o640  # not mkstemp's 0o600
    assert mode("kept.csv") == 0o604


# The child loads durable.py by path (stdlib only, no JAX: it starts in a fraction of a second),
# makes every write of atomic_write slow (1 KiB at a time), says when the new file is half
# written, and is killed with SIGKILL there.
_CHILD = r"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("durable", sys.argv[1])
durable = importlib.util.module_from_spec(spec)
spec.loader.exec_module(durable)

class Slow:
    def __init__(self, f):
        self.f = f
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)
    def write(self, blob):
        for i in range(0, len(blob), 1024):
            self.f.write(blob[i:i + 1024])
            self.f.flush()
            if i == len(blob) // 2:
                print("half", flush=True)
            time.sleep(0.001)

durable.open = lambda *a, **k: Slow(open(*a, **k))  # atomic_write's open
durable.atomic_write(sys.argv[2], b"N" * (1024 * 1024))
print("done", flush=True)
"""


@pytest.mark.parametrize("previous", [b"P" * 300_000, None])
def test_kill_9_mid_write_leaves_the_previous_file_or_none(tmp_path, previous):
    dest = tmp_path / "people.csv"
    if previous is not None:
        dest.write_bytes(previous)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, _DURABLE, str(dest)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "half"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # the half-written temporary file is there (the write was really cut), but only hidden
    temps = [n for n in os.listdir(tmp_path) if n.startswith(".people.csv.")]
    assert len(temps) == 1 and 0 < os.path.getsize(tmp_path / temps[0]) < 1024 * 1024
    if previous is None:
        assert _visible(tmp_path) == []
    else:
        assert _visible(tmp_path) == ["people.csv"] and dest.read_bytes() == previous


# --- every writer of reproduce / certify-demo goes through it ---------------------------------


def _replace_fails(monkeypatch):
    def boom(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", boom)


def test_reproduce_writers_keep_the_previous_file_when_interrupted(tmp_path, monkeypatch):
    writers = {
        "summary.json": lambda p: common.write_json(p, {"a": np.float32(1.5)}),
        "people.csv": lambda p: common.write_csv(p, ["x", "y"], [[1, 2]] * 100),
        "report.md": lambda p: durable.atomic_write(p, "# new report\n"),
        "plot.png": lambda p: _plot(p),
    }
    for name in writers:
        (tmp_path / name).write_bytes(b"previous " + name.encode())
    _replace_fails(monkeypatch)
    for name, write in writers.items():
        with pytest.raises(OSError, match="simulated crash"):
            write(str(tmp_path / name))
        assert (tmp_path / name).read_bytes() == b"previous " + name.encode(), name
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == sorted(writers)  # no temporary file left behind
    for name, write in writers.items():
        write(str(tmp_path / name))
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": 1.5}
    assert (tmp_path / "people.csv").read_text().splitlines()[:2] == ["x,y", "1,2"]
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _plot(path):
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    try:
        common.save_figure(fig, path, dpi=20)
    finally:
        plt.close(fig)


_WRITERS = {"savefig", "save", "savez", "savez_compressed", "savetxt", "dump", "write_text",
            "write_bytes", "to_csv", "imsave"}


# common.save_figure and runs.plot_summary save into atomic_path's temporary file; load_or_train's
# orbax save writes a temporary folder that orbax renames when complete, and the entry is
# verified by its checksum
_ALLOWED = {("common.py", "save_figure"), ("checkpoint.py", "load_or_train"),
            ("summary.py", "plot_summary")}


def _writes_a_file(node: ast.AST) -> bool:
    """A call that writes a file: `open(..., mode)` with a writing mode, or a known writer."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name) and func.id == "open":
        modes = [k.value for k in node.keywords if k.arg == "mode"] + node.args[1:2]
        return any(isinstance(m, ast.Constant) and isinstance(m.value, str)
                   and set(m.value) & set("wax+") for m in modes)
    return isinstance(func, ast.Attribute) and func.attr in _WRITERS


def test_nothing_under_rpjax_src_writes_a_file_except_through_durable():
    """A source check: a new `open(..., "w")`, `savefig`, `np.save` or `json.dump` under
    rpjax/_src (outside durable.py and `_ALLOWED`) would write a file that an interruption
    can cut."""
    offenders = []
    for dirpath, _, names in os.walk(os.path.join(_ROOT, "rpjax", "_src")):
        for name in names:
            path = os.path.join(dirpath, name)
            if not name.endswith(".py") or path == _DURABLE:
                continue
            tree = ast.parse(open(path, encoding="utf-8").read())
            allowed = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                       and (name, f.name) in _ALLOWED for n in ast.walk(f)}
            offenders += [f"{os.path.relpath(path, _ROOT)}:{n.lineno}" for n in ast.walk(tree)
                          if _writes_a_file(n) and id(n) not in allowed]
    assert not offenders, offenders


# --- the trained-model cache ------------------------------------------------------------------


def _params(value: float) -> dict[str, Any]:
    import jax.numpy as jnp

    return {"w": jnp.full((64, 32), value, jnp.float32), "b": jnp.arange(32.0)}


def test_a_corrupted_cache_entry_is_detected_and_retrained(tmp_path):
    import jax

    tag = {"name": "tiny", "steps": 3}
    calls = []

    def train():
        calls.append(1)
        return _params(1.0 + len(calls))

    template = _params(0.0)
    params, hit = checkpoint.load_or_train(str(tmp_path), tag, template, train)
    assert not hit and len(calls) == 1
    entry = os.path.join(tmp_path, f"tiny-{checkpoint.config_key(tag)}")
    record = json.load(open(entry + ".json", encoding="utf-8"))
    assert record["tag"] == tag and record["tree_sha256"] == durable.tree_sha256(entry)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good entry loads silently, without training
        again, hit = checkpoint.load_or_train(str(tmp_path), tag, template, train)
    assert hit and len(calls) == 1
    jax.tree.map(np.testing.assert_array_equal, again, params)

    # flip 40 bytes in the largest file of the checkpoint
    sizes = [(os.path.getsize(os.path.join(d, n)), os.path.join(d, n))
             for d, _, names in os.walk(entry) for n in names]
    _, victim = max(sizes)
    blob = bytearray(open(victim, "rb").read())
    start = len(blob) // 2 - 20
    blob[start:start + 40] = bytes(b ^ 0xFF for b in blob[start:start + 40])
    open(victim, "wb").write(bytes(blob))
    with pytest.warns(UserWarning, match=re.escape(entry) + ".*checksum"):
        fresh, hit = checkpoint.load_or_train(str(tmp_path), tag, template, train)
    assert not hit and len(calls) == 2
    np.testing.assert_array_equal(fresh["w"], 3.0)  # the retrained parameters, not the cache
    assert json.load(open(entry + ".json", encoding="utf-8"))["tree_sha256"] == \
        durable.tree_sha256(entry)  # the entry was replaced, with a new checksum

    # an entry without a recorded checksum (an interrupted save, an old entry) is retrained
    os.remove(entry + ".json")
    with pytest.warns(UserWarning, match="no recorded checksum"):
        _, hit = checkpoint.load_or_train(str(tmp_path), tag, template, train)
    assert not hit and len(calls) == 3
    _, hit = checkpoint.load_or_train(str(tmp_path), tag, template, train)
    assert hit and len(calls) == 3


# --- destinations checked before any work ------------------------------------------------------


def _unwritable(folder: str) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return os.path.isdir(folder)
    os.close(fd)
    os.remove(probe)
    return False


def _fails_fast(argv, pattern, capsys):
    t0 = time.perf_counter()
    code = cli.main(argv)
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rpjax: error: ") and err.count("\n") == 1, err
    assert re.search(pattern, err), err
    assert seconds < 1.0, seconds


def test_bad_destinations_fail_at_once_with_one_line_and_leave_nothing(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir()
    before = _tree(tmp_path)
    rows = [
        (["reproduce", "rap", "--out", str(a_file)], r"--out must be a directory"),
        (["reproduce", "rap", "--out", str(a_file / "sub")], r"--out: cannot create"),
        (["reproduce", "rap", "--out", str(tmp_path / "new"), "--cache-dir", str(a_file)],
         r"--cache-dir must be a directory"),
        (["reproduce", "rap", "--out", str(tmp_path / "new"), "--cache-dir",
          str(a_file / "cache")], r"--cache-dir: cannot create"),
        (["reproduce", "rap", "--out", str(a_file / "o"), "--no-cache"], r"--out: cannot"),
        (["certify-demo", "--json", str(a_dir)], r"--json must be a file path"),
        (["certify-demo", "--json", str(a_file / "r.json")], r"--json \(its directory\)"),
    ]
    if _unwritable("/sys"):  # unwritable even for root (sysfs)
        rows += [(["reproduce", "rap", "--out", "/sys/rpjax-test-out"], r"--out: cannot write"),
                 (["certify-demo", "--json", "/sys/rpjax-test.json"], r"--json .*cannot write")]
    for argv, pattern in rows:
        _fails_fast(argv, pattern, capsys)
    assert _tree(tmp_path) == before  # nothing created, not even the good --out
    assert not os.path.exists("/sys/rpjax-test-out")


def test_bad_out_fails_before_the_imports_in_a_fresh_process(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    code = ("import sys; from rpjax._src.cli import main; "
            f"sys.exit(main(['reproduce', 'all', '--out', {str(a_file)!r}]))")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": _ROOT}, check=False)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--out must be a directory" in proc.stderr
    assert "rpjax._src.experiments.reproduce" not in proc.stdout
    assert seconds < 30, seconds  # importing rpjax (JAX) only; no experiment runs


def test_the_cli_knows_every_experiment_without_importing_them():
    from rpjax._src.experiments import reproduce

    assert tuple(reproduce.REGISTRY) == reproduce.EXPERIMENTS
    parser = cli.build_parser()
    for name in ("all", *reproduce.REGISTRY):  # the CLI offers every registered experiment
        assert parser.parse_args(["reproduce", name]).experiment == name
    with pytest.raises(SystemExit):
        parser.parse_args(["reproduce", "not-an-experiment"])


# --- a run directory is refused or overwritten, never mixed -----------------------------------


def test_a_previous_run_is_refused_and_a_cache_alone_is_not(tmp_path, capsys):
    (tmp_path / "cache" / "model-0").mkdir(parents=True)
    outdir.check(str(tmp_path), str(tmp_path / "cache"), overwrite=False)  # only a cache: fine
    for name in ("summary.json", "report.md", outdir.MARKER):
        (tmp_path / name).write_text("{}")
        _fails_fast(["reproduce", "rap", "--out", str(tmp_path)],
                    rf"--out {re.escape(str(tmp_path))} already holds a run \({re.escape(name)}"
                    r"\); pass --overwrite to replace its outputs, or another --out", capsys)
        with pytest.raises(ValueError, match="pass overwrite=True"):
            outdir.check(str(tmp_path), None, overwrite=False)
        outdir.check(str(tmp_path), None, overwrite=True)
        os.remove(tmp_path / name)


class _FakeResult:
    config = {"fake": True}

    def headline(self):
        return {"value": 1}


def _fake_experiment(monkeypatch, fail=False, name="distillation"):
    """Replaces experiment `name` by an instant one (same name, so the CLI accepts it)."""
    from rpjax._src.experiments import reproduce

    def run(config, ctx):
        if fail:
            raise RuntimeError("interrupted")
        return _FakeResult()

    def write(result, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "summary.json")
        common.write_json(path, result.headline())
        return {"summary": path}

    fake = reproduce.Experiment(name, lambda o: {"fake": True}, run,
                                lambda r: f"## fake {name}\n", lambda r: "agrees", write)
    monkeypatch.setitem(reproduce.REGISTRY, name, fake)


def test_a_second_run_is_refused_and_overwrite_replaces_the_first(tmp_path, monkeypatch,
                                                                  capsys):
    out = tmp_path / "run"
    argv = ["reproduce", "distillation", "--out", str(out), "--no-progress"]
    _fake_experiment(monkeypatch, fail=True)
    with pytest.raises(RuntimeError, match="interrupted"):
        cli.main(argv)
    marker = json.loads((out / outdir.MARKER).read_text())
    assert marker["experiments"] == ["distillation"] and marker["finished"] is None
    _fails_fast(argv, r"already holds an unfinished run \(\.rpjax-run\.json\)", capsys)

    _fake_experiment(monkeypatch)
    (out / "rap").mkdir()  # a previous run's experiment folder
    (out / "rap" / "people.csv").write_text("stale")
    (out / "cache").mkdir()
    (out / "cache" / "model.json").write_text("kept")
    (out / "notes.txt").write_text("the user's")
    assert cli.main([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert not (out / "rap").exists()  # the previous run's outputs are gone ...
    assert (out / "cache" / "model.json").read_text() == "kept"  # ... the cache and the rest not
    assert (out / "notes.txt").read_text() == "the user's"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distillation"] == {"value": 1} and summary["experiments"] == ["distillation"]
    assert "## fake distillation" in (out / "report.md").read_text()
    assert json.loads((out / outdir.MARKER).read_text())["finished"]
    assert _visible(out) == ["cache", "distillation", "notes.txt", "report.md", "summary.json"]
    _fails_fast(argv, r"already holds a finished run", capsys)


def test_a_second_experiment_is_added_to_a_finished_run(tmp_path, monkeypatch, capsys):
    """`reproduce rap --out D` then `reproduce distillation --out D` (instant stand-ins): D
    then holds both, with one report and one summary; only what would be overwritten is
    refused."""
    out = tmp_path / "run"
    for name in ("rap", "distillation"):
        _fake_experiment(monkeypatch, name=name)
    assert cli.main(["reproduce", "rap", "--out", str(out), "--no-progress"]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert cli.main(["reproduce", "distillation", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["experiments"] == ["rap", "distillation"]
    assert summary["rap"] == first["rap"] and summary["distillation"] == {"value": 1}
    assert set(summary["config"]) == {"rap", "distillation"}
    assert summary["seconds"]["rap"] == first["seconds"]["rap"]
    text = (out / "report.md").read_text()
    assert text.index("## fake rap") < text.index("## fake distillation")
    assert json.loads((out / outdir.MARKER).read_text())["experiments"] == [
        "rap", "distillation"]
    for argv, pattern in [
            (["reproduce", "distillation"], r"already holds a finished run \(distillation/\)"),
            (["reproduce", "all"], r"already holds a finished run \(rap/, distillation/\)")]:
        _fails_fast([*argv, "--out", str(out), "--no-progress"], pattern, capsys)
    shutil.rmtree(out / "distillation")
    with pytest.raises(ValueError, match="holds a run with other settings .*preset 'default' "
                                         "there, 'quick' here"):
        from rpjax._src.experiments import reproduce

        reproduce.reproduce(["distillation"], preset="quick", out=str(out), progress=False)
