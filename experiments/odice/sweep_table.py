"""The O-DICE lambda sweep on the bundled datasets, as a table, and the value chosen for each dataset.

Reads ``experiments/odice/results/sweep/lambda-L/results/`` (leaderboard results files) and uses seed 0
of each: ``bash experiments/odice/sweep.sh`` writes one-seed runs there; ``lambda-0.6`` holds the
mini-leaderboard's O-DICE results at the code default lambda = 0.6 (3 seeds, the same budget and
evaluation, ``experiments/leaderboard/run.sh`` before the bundled presets existed; rerun them with
``--set odice.lambda_=0.6``). Nothing is retrained.

The score of a run is the mean normalized score of its last two evaluations (7,500 and 10,000
updates, 10 episodes each), which is less noisy than the final one alone; the chosen lambda of a
dataset is the one with the highest score among the values run on it. Writes
``experiments/odice/results/sweep/table.{md,json}``.

Usage: python experiments/odice/sweep_table.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from offreg.atomic import atomic_write_text
from offreg.leaderboard.results import COMPLETE, read_result
from offreg.leaderboard.runner import RESULTS_DIR


def seed0_scores(leaderboard: Path, agent: str = "odice") -> dict[str, float]:
    """``{dataset: score}`` of seed 0: the mean score of the last two evaluations."""
    out = {}
    for path in sorted((leaderboard / RESULTS_DIR).glob(f"{agent}__*.json")):
        doc = read_result(path)
        if doc["status"] != COMPLETE:
            continue
        evals = sorted((e for e in doc["evaluations"] if e["seed"] == 0), key=lambda e: e["step"])
        if len(evals) >= 2:
            out[doc["dataset"]] = float(np.mean([np.mean(e["scores"]) for e in evals[-2:]]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", default="experiments/odice/results/sweep")
    args = p.parse_args(argv)
    sweep = Path(args.sweep)
    table = {}
    for d in sorted(sweep.glob("lambda-*")):
        table[float(d.name.split("-", 1)[1])] = seed0_scores(d)
    lambdas = sorted(table)
    datasets = sorted({ds for scores in table.values() for ds in scores})
    lines = [
        "O-DICE, lambda sweep (eta = 1.0), seed 0, 10,000 updates: mean normalized score of the last two "
        "evaluations (7,500 and 10,000 updates, 10 episodes each); — where a value was not run. lambda = 0.6 is "
        "seed 0 of the mini-leaderboard's runs. Commands: `bash experiments/odice/sweep.sh`, "
        "`python experiments/odice/sweep_table.py`.",
        "",
        "| dataset | " + " | ".join(f"λ = {lam}" for lam in lambdas) + " | chosen |",
        "|---|" + "---:|" * (len(lambdas) + 1),
    ]
    chosen = {}
    for ds in datasets:
        row = [table[lam].get(ds) for lam in lambdas]
        done = [(s, lam) for s, lam in zip(row, lambdas, strict=True) if s is not None]
        best = max(done)[1] if len(done) >= 2 else None  # the best of the values run on this dataset
        if best is not None:
            chosen[ds] = best
        cells = ["—" if s is None else f"{s:.1f}" for s in row]
        lines.append(f"| {ds} | " + " | ".join(cells) + f" | {'—' if best is None else best} |")
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(sweep / "table.md", text)
    doc = {"lambdas": lambdas, "scores": {str(k): v for k, v in table.items()}, "chosen": chosen}
    atomic_write_text(sweep / "table.json", json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
