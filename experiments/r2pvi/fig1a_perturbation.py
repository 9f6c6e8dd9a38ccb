"""Fig. 1(a) of R2PVI: average return against the perturbation q on the simulated linear MDP.

PEVI and R2PVI (TV, KL, chi-square) trained on the nominal MDP (delta = 0.3, xi_norm = 0.2, N = 100
uniform-random trajectories, beta = 1, ridge gamma = 0.1, lambda = 0.1), tested in the environment
whose factor mu_{1,4} moves mass q to the fail state; 20 replications, exact returns.

    python experiments/r2pvi/fig1a_perturbation.py
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
    ap.add_argument("--lam", type=float, default=0.1, help="R2PVI regularizer lambda (TV, KL)")
    ap.add_argument("--lam-chi2", type=float, default=0.1, help="lambda of R2PVI-chi2")
    ap.add_argument("--bonus", default="code", choices=["code", "paper"], help="R2PVI bonus form")
    args = ap.parse_args()
    qs = np.round(np.linspace(0, 1, 11), 2)
    with jax.enable_x64(True):
        curves = {
            "PEVI": lmdp_returns("pevi", coefs(1.0, 0.1), args.reps, qs, bonus="elliptical"),
            f"R2PVI-TV (lambda={args.lam})": lmdp_returns("r2pvi-tv", coefs(1.0, 0.1, args.lam), args.reps, qs,
                                                         bonus=args.bonus),
            f"R2PVI-KL (lambda={args.lam})": lmdp_returns("r2pvi-kl", coefs(1.0, 0.1, args.lam), args.reps, qs,
                                                         bonus=args.bonus),
            f"R2PVI-chi2 (lambda={args.lam_chi2})": lmdp_returns("r2pvi-chi2", coefs(1.0, 0.1, args.lam_chi2),
                                                                args.reps, qs, bonus=args.bonus),
        }
    name = "fig1a_perturbation" + ("" if args.bonus == "code" else f"_{args.bonus}_bonus")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    plot_curves(ax, qs, curves)
    ax.set_xlabel("perturbation q")
    ax.set_ylabel("average return")
    ax.set_title(f"Linear MDP ({args.bonus} bonus, {args.reps} replications)")
    ax.legend(fontsize=8)
    save_figure(fig, name)
    path = write_json(name, {"q": qs, "settings": {"delta": 0.3, "xi_norm": 0.2, "beta": 1.0, "gamma": 0.1,
                                                    "N": 100, "bonus": args.bonus, "reps": args.reps},
                             "results": summary(curves)})
    for k, v in curves.items():
        print(f"{k:28s} q=0: {v.mean(0)[0]:.3f}  q=0.5: {v.mean(0)[5]:.3f}  q=1: {v.mean(0)[-1]:.3f}")
    print("wrote", path)


if __name__ == "__main__":
    main()
