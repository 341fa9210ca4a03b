"""The audit's report: `report.md` (tables), `summary.json` and plots, written atomically.

`markdown(result)` and `write(result, out_dir)` take an `AuditResult` (`rpjax.privacy.audit`);
every number in the report is one of the result's, with its units and what produced it.
"""

from __future__ import annotations

import io
import json
import math
import os
from typing import Any

from rpjax._src import durable

_WHAT_HOLDS = """\
What these numbers are. *Intervals* and *category sets* are computed: for the base model f
exactly (to the bisection's resolution), for the smoothed classifier g from its Monte Carlo
labels (CERTIFY with common random numbers along each person's sweep; -1 = abstain), one
answer at a time. A *radius* is CERTIFY's: with probability at least 1 - alpha the ideal g is
constant on the l2 ball of that radius (Cohen et al. 2019, Theorem 1); in raw units it is the
input-unit radius times the attribute's scale. "Radius covers a change" means the radius
exceeds the l2 distance between two one-hot vectors of the group, so (with that probability)
the ideal g gives every category the same label. The *leakage bounds* are
`advantage_bound(..., adaptive=True)`: for any two-class model and any attacker who chooses
each query after the earlier answers, the advantage of telling the person from the same person
with the attribute moved by the stated distance is at most the bound after k answers; *answers
allowed* is the largest k a `Budget(max_advantage=cap, delta)` lets one subject have. The
*attacks* are measurements of the named attackers on the audited people (not bounds): they
query the hardened release (label only, secret fresh noise); the `radius` attacker is given one
CERTIFY answer's radius (what releasing radii would give), the `base` attacker one label of the
undefended model."""


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _continuous(name: str, rec: dict[str, Any], units: str) -> list[str]:
    a = rec["attribute"]
    out = [f"### `{name}` (continuous{', ' + units if units else ''})", "",
           f"Column {a['index']}; raw = {a['offset']:.6g} + {a['scale']:.6g} x input; swept "
           f"over [{a['low']:g}, {a['high']:g}] ({a['num_points']} points, "
           f"{a['refine_steps']} bisection steps). Interval lengths and radii in raw units; "
           "medians over the audited people.", ""]
    rows = []
    for label, r in [("base f", rec["base"])] + [
            (f"g, sigma={s['sigma']:g}, n={s['n']}", s) for s in rec["smoothed"]]:
        q = r["preimage_quantiles"]
        rows.append([label, r["median_preimage"], f"{_fmt(q['q10'])} / {_fmt(q['q90'])}",
                     r["median_not_excluded"], r["median_ape"], r["median_radius_raw"],
                     r["share_whole_range"], r["abstain_rate"], r.get("accuracy")])
    out += [_table(["release", "median preimage", "q10 / q90", "median not excluded",
                    "median APE", "median radius", "share whole range", "abstain",
                    "accuracy"], rows), ""]
    return out + _leakage(rec) + _attacks_continuous(rec)


def _categorical(name: str, rec: dict[str, Any]) -> list[str]:
    a = rec["attribute"]
    out = [f"### `{name}` (categorical: {', '.join(a['categories'])})", "",
           f"One-hot columns {a['columns']}; a change of category is an l2 move of "
           f"{a['change_distance']:.4g} input units. Shares over the audited people.", ""]
    rows = []
    for label, r in [("base f", rec["base"])] + [
            (f"g, sigma={s['sigma']:g}, n={s['n']}", s) for s in rec["smoothed"]]:
        rows.append([label, r["share_hidden"], r["share_hidden_not_excluded"],
                     r["share_singled_out"], r["mean_compatible"],
                     r["share_radius_covers_change"], r["median_radius"], r["abstain_rate"],
                     r.get("accuracy")])
    out += [_table(["release", "share hidden", "hidden (not excluded)", "singled out",
                    "mean compatible", "radius covers change", "median radius (input)",
                    "abstain", "accuracy"], rows), "",
            "*Hidden*: every category gives the released label; *not excluded*: every "
            "category gives it or an abstention; *singled out*: only the person's own "
            "category does.", ""]
    return out + _leakage(rec) + _attacks_categorical(rec)


def _leakage(rec: dict[str, Any]) -> list[str]:
    sec = rec.get("leakage")
    if not sec:
        return []
    ks = list(sec["rows"][0]["bound_by_k"]) if sec["rows"] else []
    rows = [[r["sigma"], r["n"], *[r["bound_by_k"][k] for k in ks], r["answers_allowed"]]
            for r in sec["rows"]]
    return [f"Leakage bound between a person and {sec['between']} (delta = "
            f"{sec['delta_input_units']:.4g} input units), release mode `{sec['mode']}`, "
            f"and the answers a budget capped at advantage {sec['max_advantage']:g} allows:",
            "", _table(["sigma", "n", *[f"bound, k={k}" for k in ks], "answers allowed"],
                       rows), ""]


def _attacks_continuous(rec: dict[str, Any]) -> list[str]:
    if not rec.get("attacks"):
        return []
    rows = []
    for sec in rec["attacks"]:
        for r in sec["rows"]:
            rows.append([sec["sigma"], sec["n"], r["attacker"], r["queries"],
                         r["median_error_raw"], r["median_interval_raw"],
                         f"{r['located_in_ball']} / {r['certified_people']}",
                         r["median_certified_radius_raw"]])
    people = rec["attacks"][0]["people"]
    return [f"Attackers on the first {people} people (release mode "
            f"`{rec['attacks'][0]['mode']}`; error of the posterior median, width of the 95% "
            "credible interval, raw units; *located*: people whose interval holds the truth "
            "and is narrower than their certified ball's diameter):", "",
            _table(["sigma", "n", "attacker", "k", "median error", "median 95% interval",
                    "located / certified", "median radius"], rows), ""]


def _attacks_categorical(rec: dict[str, Any]) -> list[str]:
    if not rec.get("attacks"):
        return []
    rows = []
    for sec in rec["attacks"]:
        for r in sec["rows"]:
            rows.append([sec["sigma"], sec["n"], r["attacker"], r["queries"], r["accuracy"],
                         sec["majority_baseline_attacked"]])
    people = rec["attacks"][0]["people"]
    return [f"Attackers on the first {people} people (MAP category under a uniform prior; "
            "the majority baseline always guesses the most common category of the attacked "
            "people):", "",
            _table(["sigma", "n", "attacker", "k", "accuracy", "majority baseline"], rows), ""]


def markdown(result, *, title: str = "rpjax audit", about: str = "",
             units: dict[str, str] | None = None, level: int = 1) -> str:
    """The report's Markdown: settings, accuracy, then per attribute its tables.

    Args:
      result: an `AuditResult`.
      title: the heading; about: a paragraph describing the model and the data.
      units: raw units by continuous attribute name (for headings).
      level: heading level of the title (sections are one deeper).
    """
    units = units or {}
    c = result.config
    h = "#" * level
    out = [f"{h} {title}", ""]
    if about:
        out += [about, ""]
    out += [f"{c['num_people']} people audited; {c['num_classes']} classes; sigmas "
            f"{', '.join(f'{s:g}' for s in c['sigmas'])} (model-input units); n "
            f"{', '.join(str(n) for n in c['ns'])}; n0 {c['n0']}; alpha {c['alpha']:g}; "
            f"release mode `{c['mode']}`.", ""]
    if c.get("not_covered"):
        out += [f"Not covered: {c['not_covered']}.", ""]
    acc = result.accuracy
    if acc:
        rows = [["base f", acc["base"], 0.0]] + [
            [f"g, sigma={r['sigma']:g}, n={r['n']}", r["accuracy"], r["abstain_rate"]]
            for r in acc["releases"]]
        out += [f"{h}# Accuracy", "", _table(["release", "accuracy", "abstain"], rows),
                "", "(g's labels are CERTIFY's at the person's own input, those the intervals "
                "start from; an abstention counts as an error.)", ""]
    out += [f"{h}# Attributes", ""]
    for name, rec in result.attributes.items():
        if rec["attribute"]["kind"] == "continuous":
            out += _continuous(name, rec, units.get(name, ""))
        else:
            out += _categorical(name, rec)
    out += [_WHAT_HOLDS, ""]
    return "\n".join(out)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.set_dpi(110)
    fig.canvas.print_png(buf)  # into memory, then one atomic write
    durable.atomic_write(path, buf.getvalue())


def plots(result, out_dir: str) -> dict[str, str]:
    """Writes the plots into `out_dir`: per continuous attribute the median interval length
    against sigma (one line per n, the base model dashed), its distribution over people per
    release and the median certified radius along the sweep; per categorical attribute the
    share hidden against sigma; with labels, accuracy against privacy. Returns
    `{name: path}`."""
    plt = _pyplot()
    paths = {}
    cfg = result.config
    for name, rec in result.attributes.items():
        cont = rec["attribute"]["kind"] == "continuous"
        key, label = (("median_preimage", "median preimage length (raw units)") if cont
                      else ("share_hidden", "share of people whose category is hidden"))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for n in cfg["ns"]:
            pts = [(s["sigma"], s[key]) for s in rec["smoothed"] if s["n"] == n]
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"g, n={n}")
        ax.axhline(rec["base"][key], ls="--", color="k", label="base f")
        ax.set_xlabel("sigma (input units)")
        ax.set_ylabel(label)
        ax.set_title(name)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{name}_{'intervals' if cont else 'hidden'}.png")
        _save(fig, path)
        plt.close(fig)
        paths[f"{name}_{'intervals' if cont else 'hidden'}"] = path
        if cont:  # the distribution over people of the preimage length, per release
            fig, ax = plt.subplots(figsize=(6, 3.5))
            recs = [("f", rec["base"])] + [(f"{s['sigma']:g}/{s['n']}", s)
                                           for s in rec["smoothed"]]
            lengths = [[hi - lo for lo, hi in r["people"]["preimage"]] for _, r in recs]
            ax.boxplot(lengths)
            ax.set_xticks(range(1, len(recs) + 1), [k for k, _ in recs], fontsize=7)
            ax.set_xlabel("release (base f, or g at sigma/n)")
            ax.set_ylabel("preimage length (raw units)")
            ax.set_title(f"{name}: preimage lengths over people")
            fig.tight_layout()
            path = os.path.join(out_dir, f"{name}_distribution.png")
            _save(fig, path)
            plt.close(fig)
            paths[f"{name}_distribution"] = path
            fig, ax = plt.subplots(figsize=(5, 3.5))
            n = max(cfg["ns"])
            for s in rec["smoothed"]:
                if s["n"] == n:
                    ax.plot(s["grid"], s["median_radius_raw_along_sweep"],
                            label=f"sigma={s['sigma']:g}")
            ax.set_xlabel(f"{name} (raw units)")
            ax.set_ylabel("median certified radius (raw units)")
            ax.set_title(f"{name}: radius along the sweep, n={n}")
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = os.path.join(out_dir, f"{name}_radius.png")
            _save(fig, path)
            plt.close(fig)
            paths[f"{name}_radius"] = path
    if result.accuracy:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, rec in result.attributes.items():
            cont = rec["attribute"]["kind"] == "continuous"
            key = "median_preimage" if cont else "share_hidden"
            span = (rec["attribute"]["high"] - rec["attribute"]["low"]) if cont else 1.0
            pts = [(s.get("accuracy", float("nan")), s[key] / span) for s in rec["smoothed"]]
            ax.plot(*zip(*pts, strict=True), marker="o", ls="", label=name)
        ax.set_xlabel("accuracy of g (abstain = error)")
        ax.set_ylabel("privacy: preimage / range, or share hidden")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, "accuracy_privacy.png")
        _save(fig, path)
        plt.close(fig)
        paths["accuracy_privacy"] = path
    return paths


def write(result, out_dir: str | os.PathLike, *, title: str = "rpjax audit", about: str = "",
          units: dict[str, str] | None = None, extra: dict[str, Any] | None = None
          ) -> dict[str, str]:
    """Writes `report.md`, `summary.json` and the plots into `out_dir` (each atomically).

    Args:
      result: an `AuditResult`; title, about, units: as in `markdown`.
      extra: more JSON-ready entries for `summary.json` (e.g. the model and data provenance).

    Returns:
      `{kind: path}` of every file written.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = plots(result, out_dir)
    md = markdown(result, title=title, about=about, units=units)
    md += "\n" + "\n".join(f"![{k}]({os.path.basename(p)})" for k, p in paths.items()) + "\n"
    report = os.path.join(out_dir, "report.md")
    durable.atomic_write(report, md)
    summary = os.path.join(out_dir, "summary.json")
    durable.atomic_write(summary, json.dumps(_clean({**(extra or {}), **result.summary()}),
                                             indent=1) + "\n")
    return {"report": report, "summary": summary, **paths}
