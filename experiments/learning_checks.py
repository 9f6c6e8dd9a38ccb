"""The learning checks of offreg's agents, read from a leaderboard's results (nothing is retrained here).

One run of the leaderboard (``experiments/leaderboard/run.sh``: BC, TD3+BC, PRDC, A2PR and O-DICE on
the bundled medium and medium-replay datasets, 3 seeds, the same budget for every agent) serves three
checks, each written as a table with its verdicts:

- ``datasets``: do the bundled datasets teach what D4RL's do? TD3+BC beats the behaviour policy (the
  dataset's average episode return, normalized) on medium-replay, and matches BC (no lower than BC's
  mean minus one std over seeds) or beats it on medium.
- ``prdc_a2pr``: PRDC and A2PR at least match TD3+BC on average over the datasets (mean of the
  per-dataset means no lower), and beat BC on medium-replay (mean over those datasets).
- ``odice``: O-DICE against TD3+BC and BC on the same datasets (no pass mark is set; the table
  says where O-DICE stands).

The score of a run is the normalized score of the final policy (mean over evaluation episodes), per
seed; tables show mean ± std over seeds. The training cost of every job relative to TD3+BC's on the
same dataset (wall time of the whole job, evaluations included) is listed too.

Usage::

    bash experiments/leaderboard/run.sh             # trains (about 1.5 h on 2 cores)
    python experiments/learning_checks.py           # reads experiments/leaderboard/results

    python experiments/learning_checks.py --leaderboard DIR --out experiments/learning_checks
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from offreg.atomic import atomic_write_text
from offreg.leaderboard.results import COMPLETE, per_seed_scores, read_result
from offreg.leaderboard.runner import RESULTS_DIR

LABELS = {"bc": "BC", "td3bc": "TD3+BC", "prdc": "PRDC", "a2pr": "A2PR", "odice": "O-DICE"}


def load_runs(leaderboard: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(agent, dataset): run}`` of the complete jobs: final scores per seed and the job's wall time."""
    runs = {}
    for path in sorted((leaderboard / RESULTS_DIR).glob("*.json")):
        doc = read_result(path)
        if doc["status"] != COMPLETE:
            continue
        final = per_seed_scores(doc)["final"]
        scores = [final[s] for s in sorted(final)]
        runs[(doc["agent"], doc["dataset"])] = {
            "agent": doc["agent"], "dataset": doc["dataset"], "steps": doc["steps"], "seeds": sorted(final),
            "scores": scores, "mean": float(np.mean(scores)), "std": float(np.std(scores)),
            "wall_time_s": float(doc["wall_time_s"]),
        }
    return runs


def behaviour_scores(datasets: list[str]) -> dict[str, float]:
    """Normalized average episode return of each dataset (its behaviour policy)."""
    from offreg.data import load_dataset

    out = {}
    for name in datasets:
        ds = load_dataset(name, progress=False)
        out[name] = float(ds.info.normalized_score(np.mean(ds.episode_returns)))
    return out


def _fmt(run: dict[str, Any] | None) -> str:
    return "—" if run is None else f"{run['mean']:.1f} ± {run['std']:.1f}"


def check_datasets(runs, datasets, behaviour) -> dict[str, Any]:
    rows, verdicts = [], {}
    for d in datasets:
        bc, td = runs.get(("bc", d)), runs.get(("td3bc", d))
        verdict = None
        if td is not None and "medium-replay" in d:
            verdict = ("TD3+BC > behaviour", td["mean"] > behaviour[d])
        elif td is not None and bc is not None and d.endswith("-medium-v0"):
            verdict = ("TD3+BC >= BC - 1 std", td["mean"] >= bc["mean"] - bc["std"])
        if verdict:
            verdicts[f"{d}: {verdict[0]}"] = bool(verdict[1])
        rows.append([d, f"{behaviour[d]:.1f}", _fmt(bc), _fmt(td),
                     "" if verdict is None else f"{verdict[0]}: {'yes' if verdict[1] else 'NO'}"])
    return {"header": ["dataset", "behaviour", "BC", "TD3+BC", "check"], "rows": rows, "checks": verdicts}


def _mean_over(runs, agent, datasets) -> float | None:
    vals = [runs[(agent, d)]["mean"] for d in datasets if (agent, d) in runs]
    return float(np.mean(vals)) if vals and len(vals) == len(datasets) else None


def check_against_baselines(runs, datasets, agents) -> dict[str, Any]:
    """Per-dataset table of ``agents`` with TD3+BC and BC, and the two average checks for each agent."""
    cols = [*agents, "td3bc", "bc"]
    rows = [[d, *[_fmt(runs.get((a, d))) for a in cols]] for d in datasets]
    replay = [d for d in datasets if "medium-replay" in d]
    avg = {a: _mean_over(runs, a, datasets) for a in cols}
    avg_replay = {a: _mean_over(runs, a, replay) for a in cols}
    fmt = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
    rows.append(["mean over datasets", *[fmt(avg[a]) for a in cols]])
    rows.append(["mean over medium-replay", *[fmt(avg_replay[a]) for a in cols]])
    checks = {}
    for a in agents:
        if avg[a] is not None and avg["td3bc"] is not None:
            checks[f"{LABELS[a]} >= TD3+BC on average"] = avg[a] >= avg["td3bc"]
        if avg_replay[a] is not None and avg_replay["bc"] is not None:
            checks[f"{LABELS[a]} > BC on medium-replay"] = avg_replay[a] > avg_replay["bc"]
    return {"header": ["dataset", *[LABELS[a] for a in cols]], "rows": rows, "checks": checks,
            "mean": avg, "mean_medium_replay": avg_replay}


def cost_table(runs, datasets, agents) -> dict[str, Any]:
    rows = []
    for d in datasets:
        td = runs.get(("td3bc", d))
        rows.append([d, *[("—" if (a, d) not in runs or td is None else
                           f"{runs[(a, d)]['wall_time_s'] / td['wall_time_s']:.2f}") for a in agents]])
    return {"header": ["dataset", *[LABELS[a] for a in agents]], "rows": rows, "checks": {}}


def markdown(section: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(section["header"]) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(section["header"]) - 1)) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in section["rows"]]
    if section["checks"]:
        lines += [""] + [f"- {k}: **{'yes' if v else 'no'}**" for k, v in section["checks"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--leaderboard", default="experiments/leaderboard/results", help="leaderboard directory")
    p.add_argument("--out", default="experiments/learning_checks", help="writes OUT.json and OUT.md")
    args = p.parse_args(argv)
    runs = load_runs(Path(args.leaderboard))
    if not runs:
        raise SystemExit(f"no complete leaderboard jobs under {args.leaderboard}; run experiments/leaderboard/run.sh")
    datasets = sorted({d for _, d in runs}, key=lambda d: (d.split("-")[0], "replay" in d))
    steps = sorted({r["steps"] for r in runs.values()})
    seeds = sorted({len(r["seeds"]) for r in runs.values()})
    present = {a for a, _ in runs}
    sections = {"datasets": check_datasets(runs, datasets, behaviour_scores(datasets))}
    if {"prdc", "a2pr"} & present:
        sections["prdc_a2pr"] = check_against_baselines(runs, datasets, [a for a in ("prdc", "a2pr") if a in present])
    if "odice" in present:
        sections["odice"] = check_against_baselines(runs, datasets, ["odice"])
    sections["cost"] = cost_table(runs, datasets, [a for a in LABELS if a in present])
    command = " ".join(["python experiments/learning_checks.py", *(argv if argv is not None else sys.argv[1:])])
    titles = {"datasets": "Bundled datasets: BC and TD3+BC against the behaviour policy",
              "prdc_a2pr": "PRDC and A2PR against TD3+BC and BC",
              "odice": "O-DICE against TD3+BC and BC",
              "cost": "Wall time of each whole job relative to TD3+BC's on the same dataset"}
    text = [f"Normalized score of the final policy (D4RL reference scores), mean ± std over {seeds} seeds, "
            f"{steps} gradient updates per seed, from `{args.leaderboard}`. Command: `{command}`."]
    for key, sec in sections.items():
        text += ["", f"### {titles[key]}", "", markdown(sec)]
    doc = {"command": command, "leaderboard": args.leaderboard, "steps": steps, "seeds": seeds,
           "runs": [runs[k] for k in sorted(runs)], "sections": sections}
    atomic_write_text(Path(args.out + ".json"), json.dumps(doc, indent=2, default=float) + "\n")
    atomic_write_text(Path(args.out + ".md"), "\n".join(text) + "\n")
    print("\n".join(text))
    return doc


if __name__ == "__main__":
    main()
