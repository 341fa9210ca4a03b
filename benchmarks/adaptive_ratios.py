"""The adaptive bound's ratio to the best adaptive attacker (the table of docs/guarantee.md 3a).

For always-label, PREDICT and CERTIFY (sigma = 1, alpha = 1e-3, n0 = 10), n in {30, 100,
1000}, delta / sigma in {0.0164 (0.1 BMI point), 0.05, 0.25} and k in {1, 2, 5, 10, 20, 50,
100}: `advantage_bound(..., adaptive=True)` beside the best adaptive attacker on the linear
model (`rpjax.attacks.best_adaptive_advantage`), and the largest ratio per k. About 3
minutes on 2 cores.

Example:
  python benchmarks/adaptive_ratios.py     # -> results/adaptive_ratios.json
"""

from __future__ import annotations

import argparse
import json
import os

from rpjax import privacy
from rpjax.attacks import best_adaptive_advantage

KS = (1, 2, 5, 10, 20, 50, 100)
DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "adaptive_ratios.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=DEFAULT_JSON, help="output JSON path")
    args = parser.parse_args(argv)
    rows = []
    for mode in ("always_label", "predict", "certify"):
        for n in (30, 100, 1000):
            for d in (0.1 / 6.0959, 0.05, 0.25):
                attack = best_adaptive_advantage(mode, d=d, n=n, ks=KS, n0=10)
                bound = {k: privacy.advantage_bound(mode, sigma=1.0, delta=d, n=n, alpha=1e-3,
                                                    n0=10, k=k, adaptive=True).advantage
                         for k in KS}
                rows.append({"mode": mode, "n": n, "d": d, "attack": attack, "bound": bound})
                print(mode, n, f"{d:.4f}", " ".join(
                    f"{k}:{attack[k]:.3f}/{bound[k]:.3f}" for k in KS), flush=True)
                assert all(bound[k] >= attack[k] - 1e-9 for k in KS), rows[-1]
    worst = {k: max(r["bound"][k] / r["attack"][k] for r in rows if r["attack"][k] > 0.01)
             for k in KS}
    print("largest bound / attack per k:", {k: round(v, 3) for k, v in worst.items()})
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "largest_ratio": worst}, f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
