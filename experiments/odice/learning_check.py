"""Learning check: O-DICE against TD3+BC and BC on offreg's bundled hopper datasets, 3 seeds.

Every (agent, dataset) pair trains through the public API, ``offreg.train``, with the agents'
paper presets (``offreg/configs/<agent>.json``), all seeds vmapped in one process. The final and
best normalized scores per seed, the learning curves (mean score per evaluation) and the wall time
go to ``learning_check.json``; ``learning_check.md`` is the table made from that file.

This is a small-budget check that O-DICE learns on these datasets (a CPU budget, far below the
paper's 1M steps), not a reproduction of published scores.

Command (outputs committed in experiments/odice/results/)::

    nice -n 10 python experiments/odice/learning_check.py --steps 20000 --eval-every 5000 \\
        --eval-episodes 5 --out experiments/odice/results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

import offreg

AGENTS = ("odice", "td3bc", "bc")
DATASETS = ("offreg/hopper-medium-v0", "offreg/hopper-medium-replay-v0")


def run_one(agent: str, dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one agent on one dataset for ``args.seeds`` seeds; return the summary and curve."""
    res = offreg.train(
        agent, dataset, steps=args.steps, seeds=args.seeds, eval_every=args.eval_every,
        eval_episodes=args.eval_episodes, progress=False,
    )
    evals = [r for r in res.records if r["kind"] == "eval"]
    steps = sorted({r["step"] for r in evals})
    curve = [{"step": s, "score_mean": float(np.mean([r["score_mean"] for r in evals if r["step"] == s]))}
             for s in steps]
    s = res.summary
    return {
        "agent": agent, "dataset": dataset, "per_seed": s["per_seed"], "final_score_mean": s["final_score_mean"],
        "final_score_std": s["final_score_std"], "curve": curve, "wall_time_s": s["wall_time_s"],
        "agent_config": s["agent_config"],
    }


def table(runs: list[dict[str, Any]]) -> str:
    """Markdown table: final normalized score mean +- std over seeds, and each seed's final score."""
    lines = ["| dataset | agent | final score (mean ± std over seeds) | per seed |", "|---|---|---|---|"]
    for r in runs:
        seeds = ", ".join(f"{p['final_score']:.1f}" for p in r["per_seed"])
        lines.append(f"| {r['dataset']} | {r['agent']} | {r['final_score_mean']:.1f} ± {r['final_score_std']:.1f} "
                     f"| {seeds} |")
    return "\n".join(lines) + "\n"


def _atomic_write(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--agents", nargs="+", default=list(AGENTS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--out", default="experiments/odice/results")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    cli = sys.argv[1:] if argv is None else argv
    runs = []
    for dataset in args.datasets:
        for agent in args.agents:
            runs.append(run_one(agent, dataset, args))
            print(table(runs[-1:]).splitlines()[-1], flush=True)
            out = {"command": "python experiments/odice/learning_check.py " + " ".join(cli), "runs": runs}
            _atomic_write(os.path.join(args.out, "learning_check.json"), json.dumps(out, indent=2) + "\n")
    header = f"Command: `python experiments/odice/learning_check.py {' '.join(cli)}`\n\n"
    _atomic_write(os.path.join(args.out, "learning_check.md"), header + table(runs))
    return runs


if __name__ == "__main__":
    main()
