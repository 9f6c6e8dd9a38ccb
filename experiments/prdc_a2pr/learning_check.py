"""Learning check: PRDC and A2PR against TD3+BC and BC on offreg's bundled datasets, same budget.

Trains every agent of ``--agents`` on every dataset of ``--datasets`` with ``--seeds`` seeds
(vmapped in one process) for ``--steps`` gradient updates through the public API
(:func:`offreg.train`, per-dataset presets of ``offreg/configs/``), evaluates with the dataset's
environment, and writes one JSON with the per-seed final normalized scores and the per-dataset
means, plus the two checks of the tracker issue: PRDC and A2PR at least match TD3+BC on average,
and beat BC on the medium-replay datasets. Datasets that offreg does not ship are listed as skipped.

Usage (this is what ``results/learning_check.json`` records)::

    nice -n 10 .venv/bin/python experiments/prdc_a2pr/learning_check.py --steps 20000 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import offreg
from offreg.checkpoint import atomic_write_text
from offreg.errors import OffregError

DATASETS = [f"offreg/{env}-{level}-v0" for env in ("hopper", "halfcheetah", "walker2d")
            for level in ("medium", "medium-replay")]
AGENTS = ["prdc", "a2pr", "td3bc", "bc"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--eval-every", type=int, default=0, help="0: evaluate only at the end")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "learning_check.json"))
    args = p.parse_args(argv)
    res: dict = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
                 "steps": args.steps, "seeds": args.seeds, "runs": [], "skipped": []}
    for name in args.datasets.split(","):
        try:
            dataset = offreg.load_dataset(name)
        except OffregError as e:
            res["skipped"].append({"dataset": name, "reason": str(e)})
            print(f"skip {name}: {e}", flush=True)
            continue
        for agent in args.agents.split(","):
            t0 = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                r = offreg.train(agent, dataset, steps=args.steps, seeds=args.seeds,
                                 eval_every=args.eval_every or args.steps, eval_episodes=args.eval_episodes,
                                 out_dir=os.path.join(tmp, "run"), progress=False)
            scores = [s["final_score"] for s in r.summary["per_seed"]]
            res["runs"].append({"dataset": name, "agent": agent, "final_scores": scores,
                                "mean": float(np.mean(scores)), "std": float(np.std(scores)),
                                "config": r.config.to_dict(), "wall_s": time.time() - t0})
            print(f"{name:<32}{agent:<8}{np.mean(scores):8.1f} +- {np.std(scores):.1f}  ({time.time() - t0:.0f} s)",
                  flush=True)
    table: dict = {}
    for run in res["runs"]:
        table.setdefault(run["agent"], {})[run["dataset"]] = run["mean"]
    res["mean_by_agent"] = {a: float(np.mean(list(v.values()))) for a, v in table.items()}
    checks = {}
    for a in ("prdc", "a2pr"):
        if a in table and "td3bc" in table:
            checks[f"{a}_matches_td3bc_on_average"] = res["mean_by_agent"][a] >= res["mean_by_agent"]["td3bc"]
        if a in table and "bc" in table:
            replay = [d for d in table[a] if "medium-replay" in d and d in table["bc"]]
            if replay:
                checks[f"{a}_beats_bc_on_medium_replay"] = bool(
                    np.mean([table[a][d] for d in replay]) > np.mean([table["bc"][d] for d in replay]))
    res["checks"] = checks
    print(json.dumps({"mean_by_agent": res["mean_by_agent"], "checks": checks}, indent=2))
    out = Path(args.out)
    atomic_write_text(out, json.dumps(res, indent=2))
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
