"""The cost of a coefficient sweep in one compiled program against the same runs one by one.

    python experiments/bench/sweep_cost.py                       # O-DICE, lambda 0.4/0.6/0.8 x 3 seeds
    python experiments/bench/sweep_cost.py --steps 500 --agent td3bc --coef alpha --values 1,2.5,5

Runs ``offreg.train(agent, dataset, sweep={coef: values}, seeds=S)`` (one program, ``len(values) * S``
runs on the run axis) and then each of those runs alone (``seeds=[s]``, ``coef=v``), evaluation off,
on a bundled dataset, and writes ``experiments/bench/results/sweep_cost-<agent>.json``: wall time of
each (compilation included), the compile-and-first-chunk time, and the steady updates per second per
run (chunks after the first). On a 2-core CPU the grid's arithmetic is the same either way; what one
program saves is the compilations, the Python and dispatch overhead per chunk and the repeated
dataset preparation, while a CPU already busy with one run gains little from vmapping more.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import offreg
from offreg.atomic import atomic_write_text
from offreg.provenance import versions

OUT = Path(__file__).parent / "results"


def _timed(**kw) -> dict:
    tic = time.perf_counter()
    result = offreg.train(progress=False, eval_every=0, **kw)
    wall = time.perf_counter() - tic
    train = [r for r in result.records if r["kind"] == "train"]
    first_step = min(r["step"] for r in train)
    steady = [r["updates_per_s"] for r in train if r["step"] > first_step]
    return {"wall_s": wall, "runs": len(result.runs), "steady_updates_per_s": float(np.median(steady))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="odice")
    p.add_argument("--dataset", default="offreg/hopper-medium-replay-v0")
    p.add_argument("--coef", default="lambda")
    p.add_argument("--values", default="0.4,0.6,0.8")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=250)
    args = p.parse_args()
    values = [float(v) for v in args.values.split(",")]
    dataset = offreg.load_dataset(args.dataset)
    common = dict(steps=args.steps, log_every=args.log_every)
    swept = _timed(agent=args.agent, dataset=dataset, seeds=args.seeds, sweep={args.coef: values}, **common)
    print(f"one program: {swept['runs']} runs in {swept['wall_s']:.1f} s", flush=True)
    separate = []
    names = list(offreg.make_agent(args.agent, dataset).coefs)  # the coefficient's field name ("lambda_")
    field = args.coef if args.coef in names else f"{args.coef}_"
    for v in values:
        for s in range(args.seeds):
            separate.append(_timed(agent=args.agent, dataset=dataset, seeds=[s], overrides={field: v}, **common))
            print(f"alone: {field}={v} seed {s}: {separate[-1]['wall_s']:.1f} s", flush=True)
    total = sum(r["wall_s"] for r in separate)
    doc = {
        "command": "python experiments/bench/sweep_cost.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "agent": args.agent, "dataset": args.dataset, "coef": field, "values": values, "seeds": args.seeds,
        "steps": args.steps, "log_every": args.log_every,
        "one_program": swept,
        "separate": {"wall_s_total": total, "runs": separate},
        "wall_ratio_separate_over_one_program": total / swept["wall_s"],
        "steady_updates_per_s_per_run": {
            "one_program": swept["steady_updates_per_s"],
            "separate_median": float(np.median([r["steady_updates_per_s"] for r in separate])),
        },
        "cpu_count": os.cpu_count(),
        "versions": versions(),
    }
    print(f"{len(separate)} separate runs: {total:.1f} s; ratio {doc['wall_ratio_separate_over_one_program']:.2f}")
    atomic_write_text(OUT / f"sweep_cost-{args.agent}.json", json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
