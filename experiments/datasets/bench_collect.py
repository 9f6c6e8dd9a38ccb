"""Time ``offreg collect`` from scratch: one rollout level, and SAC training throughput.

    python experiments/datasets/bench_collect.py [--env hopper] [--level-steps 100000] [--train-steps 20000]

Runs, in a temporary directory, (1) ``collect(env, "random", level_steps=...)``: one level with no
training, i.e. the rollout and HDF5 cost of any level; (2) ``collect(env, "medium",
train_steps=..., level_steps=...)``: SAC training from scratch (compilation included) then one
rollout level. Writes ``bench_collect.json`` under ``--out`` with the seconds and the environment
steps per second of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="hopper")
    p.add_argument("--level-steps", type=int, default=100_000)
    p.add_argument("--train-steps", type=int, default=20_000)
    p.add_argument("--out", default="experiments/datasets/results")
    args = p.parse_args(argv)

    from offreg.data.generate.collect import collect
    from offreg.provenance import dataset_versions

    res = {"env": args.env, "level_steps": args.level_steps, "train_steps": args.train_steps,
           "command": " ".join(["python", *sys.argv]), "cpus": os.cpu_count(), **dataset_versions()}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        collect(args.env, "random", Path(tmp) / "a", level_steps=args.level_steps, log=None)
        res["random_level_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stamps = []
        collect(args.env, "medium", Path(tmp) / "b", train_steps=args.train_steps, level_steps=args.level_steps,
                snapshot_every=args.train_steps, log=lambda s: stamps.append((time.perf_counter(), s)))
        res["train_plus_medium_seconds"] = time.perf_counter() - t0
        res["train_seconds"] = next(t for t, s in stamps if s.startswith("[sac")) - t0
        res["train_env_steps_per_second"] = args.train_steps / res["train_seconds"]
        res["rollout_env_steps_per_second"] = args.level_steps / res["random_level_seconds"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_collect.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
