"""`rpjax audit`: the command end to end, rerun, kill -9 and resume, and the RAP experiment's
numbers reproduced by the audit on the bundled insurance data. The bad inputs are
`AUDIT_ROWS` in tests/test_bad_inputs.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rpjax._src import cli

import _audit_models as audit_models

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_audit_models.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _argv(data, out, model="linear"):
    return ["audit", "--model", f"{MODELS}:{model}", "--data", str(data), "--sensitive", "bmi",
            "--sensitive", "g", "--sigma", "0.5", "--sigma", "1.0", "--n", "200", "--n0", "50",
            "--k", "1", "--k", "10", "--attack-people", "2", "--attack-queries", "1",
            "--attack-queries", "5", "--attack-grid", "11", "--attacker-samples", "100",
            "--grid-points", "11", "--refine-steps", "4", "--out", str(out), "--no-progress"]


def _outputs(out):
    return {name: (out / name).read_bytes() for name in ("report.md", "summary.json")}


def test_audit_command_writes_the_report_and_a_rerun_changes_nothing(tmp_path):
    data = tmp_path / "d.npz"
    audit_models.data(data)
    out = tmp_path / "audit"
    assert cli.main(_argv(data, out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["attributes"]) == {"bmi", "g"}
    bmi = summary["attributes"]["bmi"]
    assert bmi["attribute"]["scale"] == 5.0 and bmi["attribute"]["offset"] == 30.0
    assert {s["sigma"] for s in bmi["smoothed"]} == {0.5, 1.0}
    assert summary["attributes"]["g"]["attribute"]["categories"] == ["a", "b", "c"]
    for png in ("bmi_intervals.png", "bmi_distribution.png", "bmi_radius.png", "g_hidden.png",
                "accuracy_privacy.png"):
        assert (out / png).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "### `bmi` (continuous" in report and "### `g` (categorical: a, b, c)" in report
    before = _outputs(out)
    assert cli.main(_argv(data, out)) == 0  # every section is read back, none recomputed
    assert _outputs(out) == before
    # another configuration in the same --out is refused, one line, nothing changed
    other = _argv(data, out)
    other[other.index("--n") + 1] = "300"
    assert cli.main(other) == 2
    assert _outputs(out) == before


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPJAX_TEST")}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.dirname(MODELS),
                                         env.get("PYTHONPATH", "")])
    return {**env, **extra}


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_report(tmp_path):
    """kill -9 once some sections are written; the same command finishes the audit, and its
    report and summary are byte for byte those of an uninterrupted run."""
    data = tmp_path / "d.npz"
    audit_models.data(data)
    reference = tmp_path / "reference"
    assert cli.main(_argv(data, reference, model="slow")) == 0
    out = tmp_path / "audit"
    argv = _argv(data, out, model="slow")
    proc = subprocess.Popen([sys.executable, "-m", "rpjax._src.cli", *argv],
                            env=_env(RPJAX_TEST_SLEEP="0.01"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    parts = out / "parts"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and len([p for p in os.listdir(parts) if p.endswith(".json")
                                   and not p.startswith(".")]) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [p for p in os.listdir(parts) if p.endswith(".json") and not p.startswith(".")]
    total = len(os.listdir(reference / "parts"))
    assert 2 <= len(done) < total, "the kill must land mid-run"
    assert not (out / "report.md").exists()
    assert cli.main(argv) == 0
    assert _outputs(out) == _outputs(reference)
    assert json.loads((out / "summary.json").read_text())["attributes"]["bmi"]["attacks"]


_RAP_MODEL = """
from rpjax._src.experiments.rap import experiment as rap
from rpjax.data import load_insurance, train_test_split


def make():  # the RAP experiment's base model (its tiny preset)
    cfg = rap.RapConfig.tiny()
    data = load_insurance()
    train_idx, _ = train_test_split(len(data.x), cfg.test_fraction, cfg.seed)
    apply_fn, params, _, _ = rap.train_base_model(cfg, data, train_idx)
    return apply_fn, params
"""


def _rap_setup():
    from rpjax._src.experiments.rap import experiment as rap
    from rpjax.data import load_insurance, train_test_split
    from rpjax.experiments import Context

    cfg = rap.RapConfig.tiny()
    res = rap.run(cfg, Context(progress=False))
    data = load_insurance()
    train_idx, test_idx = train_test_split(len(data.x), cfg.test_fraction, cfg.seed)
    return rap, cfg, res, data, train_idx, test_idx[: cfg.max_people]


def _check_rap(rec, res):
    """The audit's BMI record `rec` against the RAP experiment's result `res`."""
    # the true BMI goes through float32 inputs in the audit: equal to that rounding
    close = dict(rel=1e-6, abs=1e-6)
    assert rec["base"]["median_preimage"] == pytest.approx(res.base["median_interval_bmi"],
                                                           **close)
    assert len(rec["smoothed"]) == sum(len(v) for v in res.rp_by_n.values())
    for s in rec["smoothed"]:
        r = res.rp_by_n[str(s["n"])][str(float(s["sigma"]))]
        assert s["median_preimage"] == pytest.approx(r["median_interval_bmi"], **close)
        assert s["median_not_excluded"] == pytest.approx(r["median_not_excluded_bmi"], **close)
        assert s["median_ape"] == pytest.approx(r["median_ape_interval_bmi"], **close)
        assert s["accuracy"] == r["accuracy"] and s["abstain_rate"] == r["abstain_rate"]
        released = np.asarray(s["people"]["label"]) != -1
        radius = np.asarray(s["people"]["radius_raw"])[released]
        assert (radius.mean() if radius.size else 0.0) == pytest.approx(r["mean_radius_bmi"],
                                                                        rel=1e-5)


def test_the_audit_reproduces_the_rap_experiment_on_insurance():
    """The RAP experiment's BMI numbers (its tiny preset) from `rpjax.privacy.audit` with the
    same model, people, key and sweep."""
    from rpjax.data import load_tabular
    from rpjax.privacy import AuditConfig, audit

    rap, cfg, res, data, train_idx, people = _rap_setup()
    apply_fn, params, _, _ = rap.train_base_model(cfg, data, train_idx)
    tab = load_tabular("insurance")
    sweep = tab.attribute("bmi", num_points=cfg.grid_points, refine_steps=cfg.refine_steps)
    assert (sweep.low, sweep.high) == (cfg.sweep_low, cfg.sweep_high)
    out = audit(apply_fn, params, tab.x[people], sensitive={"bmi": sweep}, ids=people,
                labels=tab.y[people], key=jax.random.fold_in(jax.random.key(cfg.seed), 1),
                config=AuditConfig(sigmas=cfg.sigmas, ns=cfg.ns, n0=cfg.n0, alpha=cfg.alpha,
                                   attack_people=0))
    _check_rap(out.attributes["bmi"], res)


def test_rpjax_audit_on_the_bundled_insurance_data_reproduces_the_rap_experiment(tmp_path):
    """The same through the command: the RAP model as a factory, its test people saved with
    their ids, the experiment's settings, `--seed` its seed."""
    from rpjax.data import load_tabular

    rap, cfg, res, data, train_idx, people = _rap_setup()
    (tmp_path / "rapmodel.py").write_text(_RAP_MODEL)
    full = tmp_path / "insurance.npz"
    load_tabular("insurance").save(full)
    with np.load(full) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(x=arrays["x"][people], y=arrays["y"][people], ids=np.asarray(people))
    np.savez(tmp_path / "people.npz", **arrays)
    argv = ["audit", "--model", f"{tmp_path / 'rapmodel.py'}:make",
            "--data", str(tmp_path / "people.npz"), "--sensitive", "bmi",
            "--n0", str(cfg.n0), "--alpha", str(cfg.alpha), "--attack-people", "0",
            "--grid-points", str(cfg.grid_points), "--refine-steps", str(cfg.refine_steps),
            "--seed", str(cfg.seed), "--out", str(tmp_path / "out"), "--no-progress"]
    for sigma in cfg.sigmas:
        argv += ["--sigma", repr(float(sigma))]
    for n in cfg.ns:
        argv += ["--n", str(n)]
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    _check_rap(summary["attributes"]["bmi"], res)


def test_a_saved_data_set_gives_the_command_the_same_attributes(tmp_path):
    """`TabularData.save` writes the command's data file: its columns, raw units and sweep
    ranges give the attributes `TabularData.attribute` gives."""
    from rpjax._src.runs import audit as run_audit
    from rpjax.data import load_tabular

    data = load_tabular("insurance")
    path = tmp_path / "insurance.npz"
    data.save(path)
    with np.load(path) as z:
        assert z["x"].shape == data.x.shape and list(z["columns"]) == list(data.features)
    meta = run_audit._read_meta(str(path), data.x.shape[1])
    names = [s.name for s in data.sensitive]
    attrs = run_audit.sensitive_attributes(names, data.x, meta, str(path), num_points=51,
                                           refine_steps=10)
    for name in names:
        assert attrs[name] == data.attribute(name, num_points=51, refine_steps=10), name


def test_a_second_audit_on_the_same_out_is_refused(tmp_path, capsys):
    import fcntl

    data = tmp_path / "d.npz"
    audit_models.data(data)
    out = tmp_path / "audit"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # another rpjax audit holding the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cli.main(_argv(data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another rpjax audit is writing to it" in err, err
    assert not (out / "parts").exists() and not (out / "report.md").exists()
