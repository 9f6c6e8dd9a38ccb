"""Quality and regeneration time of every bundled dataset: a markdown table and a JSON file.

    python experiments/datasets/quality_table.py [--out experiments/datasets/results]

For each ``offreg/<env>-<level>-v0`` in ``offreg/bundled/manifest.json`` it regenerates the dataset
into a fresh cache directory through ``load_dataset`` (timing the regeneration), then reports the
file's rows, size, complete episodes, behaviour return (mean, std over complete episodes, from the
file's rewards) and normalized score with D4RL's reference scores, next to what is known of the
corresponding D4RL v2 dataset: its rows (derived from the third-party probe
``WillDudley/d4rl-to-minari:dataset_probing_output.csv``) and, where D4RL defines it, its behaviour
return (random = ``REF_MIN``, the mean return of a random policy; expert = ``REF_MAX``, the SAC
expert's return; both from ``Farama-Foundation/D4RL:d4rl/infos.py``). Writes ``quality.json`` and
``quality.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D4RL_ROWS = {  # N rows of the v2 files, derived from WillDudley/d4rl-to-minari:dataset_probing_output.csv
    "halfcheetah": {"random": 1_000_000, "medium": 1_000_000, "expert": 1_000_000, "medium-replay": 202_000,
                    "medium-expert": 2_000_000},
    "hopper": {"random": 1_000_000, "medium": 1_000_000, "expert": 1_000_000, "medium-replay": 402_000,
               "medium-expert": 1_999_906},
    "walker2d": {"random": 1_000_000, "medium": 1_000_000, "expert": 1_000_000, "medium-replay": 302_000,
                 "medium-expert": 1_999_995},
}


def file_returns(path: Path) -> np.ndarray:
    """Returns of the complete episodes of a D4RL file (ends at terminals or timeouts)."""
    import h5py

    with h5py.File(path, "r") as f:
        r = f["rewards"][:].astype(np.float64)
        ends = np.flatnonzero(f["terminals"][:] | f["timeouts"][:])
    starts = np.concatenate([[0], ends[:-1] + 1])
    c = np.concatenate([[0.0], np.cumsum(r)])
    return c[ends + 1] - c[starts]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/datasets/results")
    p.add_argument("--envs", default="", help="comma-separated subset of the bundled environments")
    p.add_argument("--resume-log", action="append", default=[],
                   help="stdout of an earlier (interrupted) run of this script: its rows are reused, not remeasured")
    args = p.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="offreg-quality-")
    os.environ["OFFREG_DATA_DIR"] = cache  # regenerate from scratch, timed

    from offreg.data.catalogue import LOCOMOTION_REF_SCORES
    from offreg.data.generate.bundled import BUNDLED_LEVELS, manifest
    from offreg.data.loader import generated_path, load_dataset
    from offreg.provenance import dataset_versions

    man = manifest()
    envs = [e for e in man if not args.envs or e in args.envs.split(",")]
    done = {}
    for log in args.resume_log:
        for line in Path(log).read_text().splitlines():
            if line.startswith('{"dataset"'):
                row = json.loads(line)
                done[row["dataset"]] = row
    rows = []
    for env in envs:
        lo, hi = LOCOMOTION_REF_SCORES[env]
        for level in BUNDLED_LEVELS:
            name = f"{env}-{level}-v0"
            if f"offreg/{name}" in done:
                rows.append(done[f"offreg/{name}"])
                continue
            t0 = time.perf_counter()
            ds = load_dataset(f"offreg/{name}", progress=False)
            seconds = time.perf_counter() - t0
            path = generated_path(name)
            rets = file_returns(path)
            import h5py

            with h5py.File(path, "r") as f:
                n = int(f["rewards"].shape[0])
            d4rl_ret = {"random": lo, "expert": hi}.get(level)
            rows.append({
                "dataset": f"offreg/{name}", "env": env, "level": level, "rows": n, "transitions": len(ds),
                "size_mb": path.stat().st_size / 1e6, "episodes": int(len(rets)),
                "return_mean": float(rets.mean()), "return_std": float(rets.std()),
                "normalized": float(100 * (rets.mean() - lo) / (hi - lo)),
                "regen_seconds": seconds, "d4rl_rows": D4RL_ROWS[env][level],
                "d4rl_return": d4rl_ret,
                "d4rl_normalized": None if d4rl_ret is None else float(100 * (d4rl_ret - lo) / (hi - lo)),
            })
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env_info = {"command": " ".join(["python", *sys.argv]), "machine": platform.machine(),
                "cpus": os.cpu_count(), **dataset_versions()}
    (out / "quality.json").write_text(json.dumps({"rows": rows, **env_info}, indent=2) + "\n")
    lines = [
        "| dataset | rows (D4RL v2) | size MB | episodes | behaviour return | normalized | D4RL return (infos.py) "
        "| D4RL normalized | regeneration s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d4 = "n/a" if r["d4rl_return"] is None else f"{r['d4rl_return']:.1f}"
        d4n = "n/a" if r["d4rl_normalized"] is None else f"{r['d4rl_normalized']:.0f}"
        lines.append(
            f"| {r['dataset']} | {r['rows']:,} ({r['d4rl_rows']:,}) | {r['size_mb']:.1f} | {r['episodes']} | "
            f"{r['return_mean']:.1f} ± {r['return_std']:.1f} | {r['normalized']:.1f} | {d4} | {d4n} | "
            f"{r['regen_seconds']:.1f} |"
        )
    lines += ["", "| environment | SAC steps | medium snapshot (step: return) | expert snapshot (step: return) "
              "| medium-replay rows | shipped files MB |", "|---|---:|---:|---:|---:|---:|"]
    from offreg.data.generate.bundled import bundled_dir

    for env in envs:
        m = man[env]
        rep = m["medium-replay"]
        replay_files = [g["file"] for g in rep["segments"] if g["file"]] if "segments" in rep else [rep["file"]]
        files = [m["medium"]["file"], m["expert"]["file"], *replay_files]
        mb = sum((bundled_dir() / f).stat().st_size for f in files) / 1e6
        lines.append(
            f"| {env} | {m['train_steps']:,} | {m['medium']['step']:,}: {m['medium']['return_mean']:.0f} "
            f"| {m['expert']['step']:,}: {m['expert']['return_mean']:.0f} | {m['medium-replay']['rows']:,} | {mb:.1f} |"
        )
    lines.append("")
    lines.append(f"Command: `{env_info['command']}`; mujoco {env_info['mujoco_version']}, gymnasium "
                 f"{env_info['gymnasium_version']}, {env_info['cpus']} CPUs ({env_info['machine']}).")
    (out / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
