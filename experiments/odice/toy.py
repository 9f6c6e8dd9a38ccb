"""O-DICE's toy example: S-DICE, T-DICE and O-DICE value functions next to the data support.

Trains the three update rules of ``offreg.agents.odice`` on the ``toy-navigation`` dataset (an
L-shaped corridor; see ``offreg/envs/toy_navigation.py``) through ``offreg.train`` and plots
``min_k V_k(x, y)`` over the unit square, with the dataset's states drawn on top. Writes
``toy_values.png`` and ``toy_results.json`` (per rule and seed: mean V inside and outside the
corridor and the support gap) into ``--out``.

Command (its outputs are committed in experiments/odice/results/)::

    nice -n 10 python experiments/odice/toy.py --steps 4000 --seeds 3 --out experiments/odice/results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import jax.numpy as jnp
import numpy as np

import offreg
from offreg.atomic import atomic_write, atomic_write_text
from offreg.data.generate.toy_navigation import toy_dataset
from offreg.envs.toy_navigation import CORRIDOR_WIDTH, GOAL, GOAL_RADIUS, in_support

RULES = {"semi": "S-DICE (semi-gradient)", "true": "T-DICE (true gradient)", "orthogonal": "O-DICE (orthogonal)"}

# Small networks for a 2-D task; everything else is the agent's default, except the learning rates
# (1e-3 instead of 2e-4, so a few thousand steps suffice) and no reward transform.
TOY_OVERRIDES: dict[str, Any] = dict(
    value_hidden_dims=(64, 64), policy_hidden_dims=(64, 64), value_lr=1e-3, policy_lr=1e-3,
    lambda_=0.6, eta=1.0, reward_transform="none",
)


def grid(n: int = 41) -> np.ndarray:
    """``[n * n, 2]`` points of the unit square (row-major in y)."""
    g = np.linspace(0.0, 1.0, n)
    x, y = np.meshgrid(g, g)
    return np.stack([x.ravel(), y.ravel()], -1).astype(np.float32)


def support_gap(agent: Any, points: np.ndarray | None = None) -> dict[str, float]:
    """How much lower V is outside the corridor than inside, in units of V's spread inside.

    ``gap = (mean_in V - mean_out V) / std_in V`` over grid points; larger means out-of-support
    states get lower values relative to in-support ones.
    """
    pts = grid() if points is None else points
    v = np.asarray(agent.state_value(jnp.asarray(pts)), np.float64)
    inside = in_support(pts)
    v_in, v_out = v[inside], v[~inside]
    return {
        "v_in_mean": float(v_in.mean()), "v_out_mean": float(v_out.mean()), "v_in_std": float(v_in.std()),
        "gap": float((v_in.mean() - v_out.mean()) / v_in.std()),
    }


def train_rule(rule: str, steps: int, seeds: list[int], dataset: Any) -> Any:
    """Train one update rule on the toy dataset for every seed (vmapped) with the engine."""
    return offreg.train(
        "odice", dataset, steps=steps, seeds=seeds, eval_every=0, log_every=min(steps, 1000),
        overrides={**TOY_OVERRIDES, "update_rule": rule}, progress=False,
    )


def plot(values: dict[str, np.ndarray], dataset: Any, path: str, n: int) -> None:
    """Heatmaps of V for each rule with the dataset's states overlaid; atomic write to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = np.asarray(dataset.transitions.observations)
    nxt = np.asarray(dataset.transitions.next_observations)
    outside = ~in_support(nxt)
    fig, axes = plt.subplots(1, len(values), figsize=(4.6 * len(values), 4.2))
    for ax, (rule, v) in zip(np.atleast_1d(axes), values.items(), strict=True):
        im = ax.imshow(v.reshape(n, n), origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
        ax.scatter(obs[::3, 0], obs[::3, 1], s=2, c="white", alpha=0.5, label="data states s")
        ax.scatter(nxt[outside, 0], nxt[outside, 1], s=8, c="red", marker="x", label="next states s' off the corridor")
        ax.plot([0, 1 - CORRIDOR_WIDTH, 1 - CORRIDOR_WIDTH], [CORRIDOR_WIDTH, CORRIDOR_WIDTH, 1], "w--", lw=1)
        ax.add_patch(matplotlib.patches.Circle(GOAL, GOAL_RADIUS, fill=False, ec="orange", lw=1.5))
        ax.set_title(RULES[rule])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        fig.colorbar(im, ax=ax, fraction=0.046, label="V (seed 0)")
    np.atleast_1d(axes)[0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110), suffix=".png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="experiments/odice/results")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    dataset = toy_dataset()
    pts = grid()
    seeds = list(range(args.seeds))
    cli = sys.argv[1:] if argv is None else argv
    results: dict[str, Any] = {"command": "python experiments/odice/toy.py " + " ".join(cli),
                               "steps": args.steps, "seeds": seeds, "overrides": TOY_OVERRIDES, "rules": {}}
    values = {}
    for rule in RULES:
        res = train_rule(rule, args.steps, seeds, dataset)
        per_seed = [support_gap(res.agent(s), pts) for s in seeds]
        results["rules"][rule] = {"per_seed": per_seed, "gap_mean": float(np.mean([p["gap"] for p in per_seed]))}
        values[rule] = np.asarray(res.agent(0).state_value(jnp.asarray(pts)))
        print(f"{rule:10s} gap per seed {[round(p['gap'], 3) for p in per_seed]}", flush=True)
    plot(values, dataset, os.path.join(args.out, "toy_values.png"), int(np.sqrt(len(pts))))
    path = os.path.join(args.out, "toy_results.json")
    atomic_write_text(path, json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
