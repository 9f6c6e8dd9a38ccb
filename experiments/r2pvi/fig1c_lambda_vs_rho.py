"""Fig. 1(c) of R2PVI: R2PVI-TV (lambda) against DRPVI (rho) at a fixed perturbation q = 0.9.

DRPVI's TV radius rho applies to all 4 coordinates at both steps (the notebook's "figure3" cell);
the x-axis is rho for DRPVI and lambda for R2PVI-TV, over linspace(0, 1, 10).

    python experiments/r2pvi/fig1c_lambda_vs_rho.py
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
    ap.add_argument("--q", type=float, default=0.9)
    args = ap.parse_args()
    xs = np.linspace(0, 1, 10)
    with jax.enable_x64(True):
        tv = np.stack([lmdp_returns("r2pvi-tv", coefs(1.0, 0.1, lam), args.reps, [args.q])[:, 0] for lam in xs], 1)
        dr = np.stack([lmdp_returns("drpvi", coefs(1.0, 0.1, rho=rho), args.reps, [args.q])[:, 0] for rho in xs], 1)
    curves = {"R2PVI-TV (x = lambda)": tv, "DRPVI (x = rho)": dr}
    fig, ax = plt.subplots(figsize=(5, 3.6))
    plot_curves(ax, xs, curves)
    ax.set_xlabel("lambda (R2PVI-TV) or rho (DRPVI)")
    ax.set_ylabel(f"average return at q = {args.q}")
    ax.legend(fontsize=8)
    save_figure(fig, "fig1c_lambda_vs_rho")
    path = write_json("fig1c_lambda_vs_rho", {"x": xs, "settings": {"q": args.q, "delta": 0.3, "xi_norm": 0.2,
                                                                    "beta": 1.0, "gamma": 0.1, "N": 100,
                                                                    "reps": args.reps},
                                              "results": summary(curves)})
    for k, v in curves.items():
        print(k, np.round(v.mean(0), 3).tolist())
    print("wrote", path)


if __name__ == "__main__":
    main()
