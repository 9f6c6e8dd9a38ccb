"""Train the SAC behaviour policy of a bundled dataset and keep everything needed to bundle it.

    python experiments/datasets/train_behaviour.py --env hopper --steps 200000 --out RUN_DIR

writes ``RUN_DIR/step{N}.npz`` (policy snapshots), ``RUN_DIR/snapshots.json`` (their evaluated
returns, updated at every snapshot) and ``RUN_DIR/replay.npz`` (the replay buffer so far, rewritten at
every snapshot, so an interrupted run can still be bundled). ``make_bundled.py`` then chooses the
medium and expert snapshots and copies the small files into ``offreg/bundled/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

from offreg.atomic import atomic_write
from offreg.data.generate.sac import SACConfig, train_sac
from offreg.data.generate.snapshots import save_snapshot


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True)
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = SACConfig()
    index: dict = {"env": args.env, "seed": args.seed, "steps": args.steps, "config": dataclasses.asdict(config),
                   "command": " ".join(["python", *sys.argv]), "snapshots": []}

    def keep(snap, replay):
        save_snapshot(out / f"step{snap.step}.npz", snap.actor,
                      {"env_id": args.env, "step": snap.step, "return_mean": snap.return_mean,
                       "return_std": snap.return_std, "seed": args.seed, "hidden_dims": list(config.hidden_dims)})
        index["snapshots"].append({"step": snap.step, "return_mean": snap.return_mean, "return_std": snap.return_std})

        def write_replay(path):
            with open(path, "wb") as f:
                np.savez(f, **replay)

        atomic_write(out / "replay.npz", write_replay)
        atomic_write(out / "snapshots.json", lambda path: path.write_text(json.dumps(index, indent=2)))

    train_sac(args.env, args.steps, args.seed, config, args.snapshot_every, args.eval_episodes,
              log=lambda s: print(s, flush=True), on_snapshot=keep)
    print("done", os.getpid(), flush=True)


if __name__ == "__main__":
    main()
