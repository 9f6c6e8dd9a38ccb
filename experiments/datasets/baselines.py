"""BC and TD3+BC on the bundled medium and medium-replay datasets: do the datasets teach what D4RL's do?

    python experiments/datasets/baselines.py --steps 20000 --seeds 3 [--envs hopper,halfcheetah,walker2d]

For each bundled environment and level (medium, medium-replay) it trains BC and TD3+BC (the agents'
default configs, or the paper presets where the presets match ``offreg/<env>-<level>-v0``) with
``--seeds`` seeds in one vmapped run of ``offreg.train``, evaluates each seed's final policy on
``--eval-episodes`` episodes, and writes one JSON per run plus ``baselines.json`` / ``baselines.md``
under ``--out``: normalized score mean ± std over seeds next to the behaviour policy's (the dataset's
own average episode return, normalized). The checks of the tracker issue are printed: TD3+BC beats the
behaviour policy on medium-replay, and matches (within one std) or beats BC on medium.

The budget (``--steps``) is far below the papers' 1M updates: it is what a 2-core machine allows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--envs", default="hopper,halfcheetah,walker2d")
    p.add_argument("--levels", default="medium,medium-replay")
    p.add_argument("--agents", default="bc,td3bc")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--out", default="experiments/datasets/results/baselines")
    args = p.parse_args(argv)

    from offreg.data.loader import load_dataset
    from offreg.train import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", *sys.argv])
    results = []
    for env in args.envs.split(","):
        for level in args.levels.split(","):
            name = f"offreg/{env}-{level}-v0"
            ds = load_dataset(name, progress=False)
            behaviour = float(ds.info.normalized_score(np.mean(ds.episode_returns)))
            for agent in args.agents.split(","):
                path = out / f"{agent}_{env}_{level}.json"
                if path.is_file():  # resumable: one file per finished run
                    results.append(json.loads(path.read_text()))
                    continue
                t0 = time.time()
                res = train(agent, name, steps=args.steps, seeds=args.seeds, eval_every=args.steps,
                            eval_episodes=args.eval_episodes, progress=False)
                scores = [float(s) for s in res.final_scores]
                row = {"agent": agent, "dataset": name, "env": env, "level": level, "steps": args.steps,
                       "seeds": res.seeds, "scores": scores, "mean": float(np.mean(scores)),
                       "std": float(np.std(scores)), "behaviour_normalized": behaviour,
                       "seconds": time.time() - t0, "command": command, "config": _jsonable(res.config)}
                path.write_text(json.dumps(row, indent=2) + "\n")
                results.append(row)
                print(f"{agent:6s} {name:36s} {row['mean']:6.1f} ± {row['std']:5.1f} "
                      f"(behaviour {behaviour:5.1f}, {row['seconds']:.0f}s)", flush=True)
    # the report covers every finished run in --out (earlier invocations with other --envs included)
    everything = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    report(everything, out, command)


def _jsonable(config) -> dict:
    import dataclasses

    try:
        d = dataclasses.asdict(config)
    except TypeError:
        return {}
    return json.loads(json.dumps(d, default=lambda x: float(np.asarray(x)) if np.size(x) == 1 else str(x)))


def report(results: list[dict], out: Path, command: str) -> None:
    """Write ``baselines.json`` and ``baselines.md`` and print the issue's checks."""
    by = {(r["agent"], r["dataset"]): r for r in results}
    datasets = sorted({r["dataset"] for r in results})
    lines = ["| dataset | behaviour | BC | TD3+BC | check |", "|---|---:|---:|---:|---|"]
    checks = []
    for d in datasets:
        bc, td = by.get(("bc", d)), by.get(("td3bc", d))
        beh = (bc or td)["behaviour_normalized"]
        fmt = lambda r: "—" if r is None else f"{r['mean']:.1f} ± {r['std']:.1f}"
        check = ""
        if td is not None and d.endswith("medium-replay-v0"):
            ok = td["mean"] > beh
            check = f"TD3+BC > behaviour: {'yes' if ok else 'NO'}"
            checks.append(ok)
        elif td is not None and bc is not None and d.endswith("medium-v0"):
            ok = td["mean"] >= bc["mean"] - bc["std"]
            check = f"TD3+BC >= BC (within 1 std): {'yes' if ok else 'NO'}"
            checks.append(ok)
        lines.append(f"| {d} | {beh:.1f} | {fmt(bc)} | {fmt(td)} | {check} |")
    steps = sorted({r["steps"] for r in results})
    seeds = sorted({len(r["seeds"]) for r in results})
    lines += ["", f"Normalized scores (D4RL reference scores), mean ± std over {seeds} seeds of the final policy, "
              f"{steps} gradient steps. Command: `{command}`."]
    (out.parent / "baselines.json").write_text(json.dumps({"runs": results, "command": command}, indent=2) + "\n")
    (out.parent / "baselines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"checks passed: {sum(checks)}/{len(checks)}")


if __name__ == "__main__":
    main()
