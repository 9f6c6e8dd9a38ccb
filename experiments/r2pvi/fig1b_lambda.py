"""Fig. 1(b) of R2PVI: the effect of the regularizer lambda (R2PVI-TV, linear MDP, xi_norm = 0.3).

    python experiments/r2pvi/fig1b_lambda.py
"""

from __future__ import annotations

import argparse

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import coefs, lmdp_returns, plot_curves, save_figure, summary, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--lams", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.6])
    ap.add_argument("--xi-norm", type=float, default=0.3)
    args = ap.parse_args()
    qs = np.round(np.linspace(0, 1, 11), 2)
    with jax.enable_x64(True):
        curves = {f"lambda={lam}": lmdp_returns("r2pvi-tv", coefs(1.0, 0.1, lam), args.reps, qs, xi_norm=args.xi_norm)
                  for lam in args.lams}
    fig, ax = plt.subplots(figsize=(5, 3.6))
    plot_curves(ax, qs, curves, band=False)
    ax.set_xlabel("perturbation q")
    ax.set_ylabel("average return")
    ax.set_title(f"R2PVI-TV, linear MDP (xi_norm={args.xi_norm})")
    ax.legend(fontsize=8)
    save_figure(fig, "fig1b_lambda")
    path = write_json("fig1b_lambda", {"q": qs, "settings": {"delta": 0.3, "xi_norm": args.xi_norm, "beta": 1.0,
                                                             "gamma": 0.1, "N": 100, "reps": args.reps},
                                       "results": summary(curves)})
    for k, v in curves.items():
        print(f"{k:14s} q=0: {v.mean(0)[0]:.3f}  q=0.5: {v.mean(0)[5]:.3f}  q=1: {v.mean(0)[-1]:.3f}")
    print("wrote", path)


if __name__ == "__main__":
    main()
