"""Answers a per-subject advantage budget allows, beside the best adaptive attacker.

For a cap of 0.5 on the composed advantage bound (`advantage_bound(..., adaptive=True)`, the
bound `rpjax.privacy.Budget(max_advantage=..., delta=...)` enforces) at a protected distance
of 1 and 0.1 BMI points (0.164 and 0.0164 standardized units on the bundled insurance data),
sigma = 1, alpha = 1e-3, n0 = 100 (CERTIFY), n in {100, 1000}: the answers allowed, and the
advantage of the best adaptive attacker on the linear model (the model on which the
Lipschitz bound is attained; `rpjax.attacks.best_adaptive_advantage`, dynamic programming,
independent of the bound's code) after that many answers, and the most answers it can be
given before it exceeds the cap.

Examples:
  python benchmarks/budget_table.py                 # -> results/budget_table.json
  python benchmarks/budget_table.py --quick --json /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

from rpjax import SmoothingConfig, privacy
from rpjax.attacks import best_adaptive_advantage

BMI_STD = 6.0959  # BMI points per standardized unit on the bundled insurance data
DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "budget_table.json")


def _attacker_limit(curve: dict[int, float], cap: float) -> int:
    """The largest k whose best-attack advantage stays <= cap (k beyond the curve: its end)."""
    ok = [k for k, v in sorted(curve.items()) if v <= cap]
    return max(ok) if ok else 0


def row(mode: str, n: int, delta_bmi: float, cap: float, kmax: int) -> dict:
    d = delta_bmi / BMI_STD
    t0 = time.perf_counter()
    config = privacy.ReleaseConfig(smoothing=SmoothingConfig(sigma=1.0, n=n, n0=100, alpha=1e-3),
                                   num_classes=2, mode=mode)
    allowed = int(privacy.Budget(max_advantage=cap, delta=d).answers_allowed(config))
    ks = sorted(set(range(1, kmax + 1)) | {allowed})
    curve = best_adaptive_advantage(mode, d=d, n=n, ks=ks, n0=100)
    return {"mode": mode, "n": n, "delta_bmi": delta_bmi, "delta": d, "cap": cap,
            "one_answer_bound": privacy.advantage_bound(
                mode, sigma=1.0, delta=d, n=n, alpha=1e-3, n0=100, adaptive=True).advantage,
            "answers_allowed": allowed,
            "bound_at_allowed": privacy.advantage_bound(
                mode, sigma=1.0, delta=d, n=n, alpha=1e-3, n0=100, k=max(allowed, 1),
                adaptive=True).advantage,
            "best_attack_at_allowed": curve[allowed] if allowed else 0.0,
            "best_attack_within_cap_up_to": _attacker_limit(curve, cap),
            "kmax_searched": kmax, "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 100 and 1 BMI point only")
    parser.add_argument("--json", default=DEFAULT_JSON, help="output JSON path")
    parser.add_argument("--cap", type=float, default=0.5)
    args = parser.parse_args(argv)
    configs = [(m, n, b) for b in (1.0, 0.1) for n in (100, 1000)
               for m in ("predict", "always_label", "certify")]
    if args.quick:
        configs = [(m, 100, 1.0) for m in ("predict", "always_label", "certify")]
    rows = []
    print(f"{'mode':>13} {'n':>5} {'delta BMI':>9} {'allowed':>8} {'bound':>6} "
          f"{'attack@allowed':>14} {'attack <= cap up to':>19}")
    for mode, n, delta_bmi in configs:
        kmax = 40 if delta_bmi >= 1 else 400
        r = row(mode, n, delta_bmi, args.cap, kmax)
        rows.append(r)
        limit = r["best_attack_within_cap_up_to"]
        print(f"{mode:>13} {n:>5} {delta_bmi:>9} {r['answers_allowed']:>8} "
              f"{r['bound_at_allowed']:>6.3f} {r['best_attack_at_allowed']:>14.3f} "
              f"{(str(limit) if limit < kmax else f'>= {kmax}'):>19}", flush=True)
        assert r["best_attack_at_allowed"] <= r["bound_at_allowed"] + 1e-9, r
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"cap": args.cap, "sigma": 1.0, "alpha": 1e-3, "n0": 100, "rows": rows}, f,
                  indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
