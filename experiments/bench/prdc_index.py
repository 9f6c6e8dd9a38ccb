"""Memory (and build time) of PRDC's neighbour-search index for a dataset of N rows.

The index (:mod:`offreg.agents.neighbour_index`) holds, on the device: the states and actions in slab
order (padded by ``MAX_BLOCK`` rows), the ``K`` candidate positions per row, the certified radius,
the state hashes, the slab projections and the squared norms. Its size follows from the shapes
alone, so ``--no-build`` reports it exactly without building; ``--build`` also builds it on
synthetic D4RL-shaped data (random-walk trajectories of 1000 steps, normalized; smooth tanh
actions) and reports the build time, the bytes of the arrays built and the peak host RSS.

Usage::

    .venv/bin/python experiments/bench/prdc_index.py --rows 2000000 --obs-dim 17 --act-dim 6 --no-build
    nice -n 10 .venv/bin/python experiments/bench/prdc_index.py --rows 2000000 --build

Writes JSON to ``experiments/prdc_a2pr/results/prdc_index_<rows>.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import jax
import numpy as np

from offreg.agents.neighbour_index import MAX_BLOCK, build_index, index_nbytes
from offreg.atomic import atomic_write_text


def expected_nbytes(n: int, obs_dim: int, act_dim: int, k: int) -> dict[str, int]:
    """Bytes of each index array from the shapes documented in ``NeighbourIndex``."""
    out = {
        "states": (n + MAX_BLOCK) * obs_dim * 4,
        "actions": (n + MAX_BLOCK) * act_dim * 4,
        "rows": n * 4,
        "positions": n * 4,
        "candidates": n * min(k, n) * 4,
        "radius_sq": n * 4,
        "hash_sorted": n * 4,
        "hash_pos": n * 4,
        "axis": obs_dim * 4,
        "proj": n * 4,
        "slab_margin": 4,
        "sq_norm_states": (n + MAX_BLOCK) * 4,
        "sq_norm_actions": (n + MAX_BLOCK) * 4,
    }
    out["total"] = sum(out.values())
    return out


def synthetic(n: int, obs_dim: int, act_dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    eps = -(-n // 1000)
    s = np.cumsum(rng.normal(scale=0.1, size=(eps, 1000, obs_dim)).astype(np.float32), axis=1).reshape(-1, obs_dim)[:n]
    s = (s - s.mean(0)) / (s.std(0) + 1e-3)
    a = np.tanh(np.cumsum(rng.normal(scale=0.2, size=(eps, 1000, act_dim)).astype(np.float32), axis=1))
    return s.astype(np.float32), a.reshape(-1, act_dim)[:n].astype(np.float32)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--k", type=int, default=32, help="candidates per row (PRDCConfig.index_candidates)")
    p.add_argument("--build", dest="build", action="store_true", help="also build it (time, RSS)")
    p.add_argument("--no-build", dest="build", action="store_false")
    p.set_defaults(build=False)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    res: dict = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "rows": args.rows, "obs_dim": args.obs_dim, "act_dim": args.act_dim, "k": args.k,
        "expected_bytes": expected_nbytes(args.rows, args.obs_dim, args.act_dim, args.k),
        "dataset_bytes_float32_states_actions": args.rows * (args.obs_dim + args.act_dim) * 4,
        "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "backend": jax.default_backend(),
    }
    if args.build:
        s, a = synthetic(args.rows, args.obs_dim, args.act_dim)
        t0 = time.perf_counter()
        index = build_index(s, a, k=args.k)
        jax.block_until_ready(index)
        res["build_seconds"] = time.perf_counter() - t0
        res["built_bytes"] = index_nbytes(index)
        res["peak_host_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert res["built_bytes"]["total"] == res["expected_bytes"]["total"]
    total = res["expected_bytes"]["total"]
    print(f"index for {args.rows} rows (obs {args.obs_dim}, act {args.act_dim}, K={args.k}): "
          f"{total / 2**20:.1f} MiB on the device")
    if args.build:
        print(f"built in {res['build_seconds']:.1f} s; peak host RSS {res['peak_host_rss_bytes'] / 2**30:.2f} GiB")
    out = Path(args.out or Path(__file__).parents[1] / "prdc_a2pr" / "results" / f"prdc_index_{args.rows}.json")
    atomic_write_text(out, json.dumps(res, indent=2))
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
