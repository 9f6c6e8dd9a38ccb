"""Fig. 1(d) of R2PVI: the American put option under price-up probability p.

PEVI, R2PVI-TV (lambda in {1, 3, 5}) and DRPVI (rho in {0.2, 0.1, 0.025}, all coordinates) with
d = 30 hat features, N = 100 always-hold paths from p0 = 0.5, beta = 0.1, ridge gamma = 1, H = 20,
3 replications (training s_1 from seeds 0, 1, 2; test s_1 = 99.170 from seed 1), exact returns.

    python experiments/r2pvi/fig1d_option.py
"""

from __future__ import annotations

import argparse

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import coefs, option_returns, plot_curves, save_figure, summary, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lams", type=float, nargs="+", default=[1.0, 3.0, 5.0])
    ap.add_argument("--rhos", type=float, nargs="+", default=[0.2, 0.1, 0.025])
    args = ap.parse_args()
    ps = [0.2, 0.4, 0.6, 0.8, 1.0]
    c = lambda **kw: coefs(0.1, 1.0, horizon=20, dim=30, **kw)
    with jax.enable_x64(True):
        curves = {"PEVI": option_returns("pevi", c(), args.reps, ps, bonus="elliptical")}
        for lam in args.lams:
            curves[f"R2PVI-TV lambda={lam:g}"] = option_returns("r2pvi-tv", c(lam=lam), args.reps, ps)
        for rho in args.rhos:
            curves[f"DRPVI rho={rho:g}"] = option_returns("drpvi", c(rho=rho), args.reps, ps)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    plot_curves(ax, ps, curves, band=False)
    ax.set_xlabel("price-up probability p")
    ax.set_ylabel("average return")
    ax.set_title("American put option (d=30, N=100)")
    ax.legend(fontsize=7)
    save_figure(fig, "fig1d_option")
    path = write_json("fig1d_option", {"p": ps, "settings": {"d": 30, "N": 100, "beta": 0.1, "gamma": 1.0, "H": 20,
                                                             "p0": 0.5, "reps": args.reps, "test_s1": 99.170},
                                       "results": summary(curves)})
    for k, v in curves.items():
        print(f"{k:22s}", np.round(v.mean(0), 3).tolist())
    print("wrote", path)


if __name__ == "__main__":
    main()
