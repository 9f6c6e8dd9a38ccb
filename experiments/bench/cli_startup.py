"""Benchmark: wall time of the first commands a user types, ``offreg --help``, ``offreg --version``
and ``offreg agents`` (target: under 0.5 s each).

Each command runs ``--repeats`` times in a fresh interpreter, ``python -m offreg.cli ARGS`` (the
same entry point as the ``offreg`` script), timed from process start to exit; the median, minimum
and maximum are reported, with the time of a bare ``python -c pass`` for reference and the machine's
load average before and after.

Usage:  python experiments/bench/cli_startup.py [--repeats 11] [--out experiments/bench/results/cli_startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {"offreg --help": ["--help"], "offreg --version": ["--version"], "offreg agents": ["agents"]}


def wall_times(argv: list[str], repeats: int) -> list[float]:
    """Seconds of ``repeats`` runs of ``argv`` in fresh processes (output discarded)."""
    out = []
    for _ in range(repeats):
        tic = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - tic)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--out", default="experiments/bench/results/cli_startup.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = {"python -c pass": wall_times([sys.executable, "-c", "pass"], args.repeats)}
    for name, argv in COMMANDS.items():
        rows[name] = wall_times([sys.executable, "-m", "offreg.cli", *argv], args.repeats)
    result = {
        "command": " ".join(["python", "experiments/bench/cli_startup.py", *sys.argv[1:]]),
        "repeats": args.repeats,
        "load_average": [load_before, os.getloadavg()[0]],
        "seconds": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in rows.items()},
    }
    for name, s in result["seconds"].items():
        print(f"{name:<18} median {s['median']:.3f} s  (min {s['min']:.3f}, max {s['max']:.3f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
