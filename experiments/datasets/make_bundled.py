"""Choose the medium and expert snapshots of a behaviour run and copy the bundle into ``offreg/bundled``.

    python experiments/datasets/make_bundled.py --env hopper --run RUN_DIR [--level-steps 100000]

``RUN_DIR`` is the output of ``train_behaviour.py``. Following D4RL's recipe, the expert is the
snapshot with the best evaluated return and the medium snapshot is the first whose return reaches
``--medium-fraction`` (1/3) of D4RL's expert return, else of the trained expert's
(``offreg.data.generate.collect.choose_levels``); ``--medium-step`` /
``--expert-step`` override the choice. Writes ``offreg/bundled/<env>-medium.npz``,
``<env>-expert.npz``, ``<env>-medium-replay.npz`` (the replay buffer up to the medium snapshot,
packed by ``offreg.data.generate.bundled.pack_replay``; with ``--replay-snapshots``, the float16 training
snapshots ``<env>-replay-step<N>.npz`` that ``offreg.data.generate.bundled.replay_from_snapshots`` rolls out
instead) and the ``<env>`` entry of ``manifest.json``, and
deletes cached regenerations of the previous bundle of ``<env>`` from the offreg data cache.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from offreg.atomic import atomic_write
from offreg.data.generate.bundled import BUNDLED_LEVELS, bundled_dir, pack_replay
from offreg.data.generate.collect import REF_SCORES, choose_levels
from offreg.data.generate.rollout import replay_until
from offreg.data.generate.snapshots import Snapshot, load_snapshot, save_snapshot
from offreg.data.loader import generated_path
from offreg.envs import make_env


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--medium-fraction", type=float, default=1.0 / 3.0)
    p.add_argument("--medium-step", type=int)
    p.add_argument("--expert-step", type=int)
    p.add_argument("--level-steps", type=int, default=100_000)
    p.add_argument("--num-envs", type=int, default=10)
    p.add_argument("--replay-snapshots", action="store_true",
                   help="ship medium-replay as the sequence of training snapshots (float16) instead of the data")
    args = p.parse_args(argv)
    run = Path(args.run)
    index = json.loads((run / "snapshots.json").read_text())
    snaps = [Snapshot(s["step"], None, s["return_mean"], s["return_std"]) for s in index["snapshots"]]
    medium, expert, target = choose_levels(snaps, args.medium_fraction, REF_SCORES[args.env][1])
    by_step = {s.step: s for s in snaps}
    if args.medium_step:
        medium = by_step[args.medium_step]
    if args.expert_step:
        expert = by_step[args.expert_step]
    out = bundled_dir()
    out.mkdir(parents=True, exist_ok=True)
    env = args.env
    for level, s in (("medium", medium), ("expert", expert)):
        shutil.copyfile(run / f"step{s.step}.npz", out / f"{env}-{level}.npz")
    replay_info: dict = {"file": f"{env}-medium-replay.npz", "rows": int(medium.step)}
    for old in out.glob(f"{env}-replay-step*.npz"):
        old.unlink()
    (out / f"{env}-medium-replay.npz").unlink(missing_ok=True)
    if args.replay_snapshots:
        every = snaps[0].step
        segments = [{"file": None, "rows": every}]
        for step in range(every, medium.step, every):
            params, meta = load_snapshot(run / f"step{step}.npz")
            save_snapshot(out / f"{env}-replay-step{step}.npz", params, meta, dtype=np.float16)
            segments.append({"file": f"{env}-replay-step{step}.npz", "rows": every})
        replay_info = {"segments": segments, "rows": int(sum(s["rows"] for s in segments))}
        replay_files = [s["file"] for s in segments if s["file"]]
    else:
        with np.load(run / "replay.npz", allow_pickle=False) as z:
            replay = {k: z[k] for k in z.files}
        packed = pack_replay(replay_until(replay, medium.step))

        def write_replay(path):
            with open(path, "wb") as f:
                np.savez_compressed(f, **packed)

        atomic_write(out / f"{env}-medium-replay.npz", write_replay)
        replay_files = [f"{env}-medium-replay.npz"]
    man_path = out / "manifest.json"
    man = json.loads(man_path.read_text()) if man_path.is_file() else {}
    man[env] = {
        "gym_id": make_env(env).spec.id,
        "seed": int(index["seed"]),
        "level_steps": args.level_steps,
        "num_envs": args.num_envs,
        "train_command": index["command"],
        "train_steps": int(max(s.step for s in snaps)),
        "medium_fraction": args.medium_fraction,
        "medium_target": target,
        "medium": {"file": f"{env}-medium.npz", "step": medium.step, "return_mean": medium.return_mean,
                   "return_std": medium.return_std},
        "expert": {"file": f"{env}-expert.npz", "step": expert.step, "return_mean": expert.return_mean,
                   "return_std": expert.return_std},
        "medium-replay": replay_info,
        "snapshots": index["snapshots"],
    }
    atomic_write(man_path, lambda path: path.write_text(json.dumps(man, indent=2, sort_keys=True) + "\n"))
    # cached regenerations of the previous bundle are stale now
    for level in BUNDLED_LEVELS:
        generated_path(f"{env}-{level}-v0").unlink(missing_ok=True)
    size = sum((out / f).stat().st_size for f in [f"{env}-medium.npz", f"{env}-expert.npz", *replay_files])
    print(f"{env}: medium step {medium.step} ({medium.return_mean:.1f}), expert step {expert.step} "
          f"({expert.return_mean:.1f}), bundle {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
