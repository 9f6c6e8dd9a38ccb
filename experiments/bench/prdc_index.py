"""Memory (and build time) of PRDC's neighbour-search index for a dataset of N rows.

The index (:mod:`offreg.agents.neighbour_index`) holds, on the device: the states and actions in leaf
order (padded by ``MAX_BLOCK`` slots), the dataset row of every slot and the slot of every row, the
KD-tree's node boxes (states and actions) and its splits. Its size follows from the shapes alone,
so ``--no-build`` reports it exactly without building; ``--build`` also builds it on
synthetic D4RL-shaped data (random-walk trajectories of 1000 steps, normalized; smooth tanh
actions) and reports the build time, the bytes of the arrays built and the peak host RSS.

``--dense ROWS`` instead builds it on dense data like a real D4RL file of that size: the bundled
``offreg/hopper-medium-v0`` tiled until it has ``ROWS`` rows, with Gaussian noise of 0.01 added to the
observations and actions of every copy but the first (a D4RL-sized 1M-row file), normalized as PRDC
trains. It reports the build time, the cache-load time, the search's fraction answered by its first
batched pass, its leaves scanned per query and its time per 256-query batch (queries: batch rows
with their own action plus noise of 0.1 and of 0.3, as a policy part-way through training, with
actions N(0, 0.05), as a freshly initialized policy's, and with uniform random actions; the rows'
own actions as the search's hints, as PRDC passes them),
and the time per update of PRDC and TD3+BC (``scan_updates``, ``--chunk`` updates, fastest of 3) in
the same process.

Usage::

    .venv/bin/python experiments/bench/prdc_index.py --rows 2000000 --obs-dim 17 --act-dim 6 --no-build
    nice -n 10 .venv/bin/python experiments/bench/prdc_index.py --rows 2000000 --build
    nice -n 10 .venv/bin/python experiments/bench/prdc_index.py --dense 1000000

Writes JSON to ``experiments/prdc_a2pr/results/prdc_index_<rows>.json``
(``prdc_index_dense_<rows>.json`` with ``--dense``; ``--out``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
from pathlib import Path

import jax
import numpy as np

from offreg.agents.neighbour_index import MAX_BLOCK, build_index, index_nbytes, tree_shape
from offreg.atomic import atomic_write_text


def expected_nbytes(n: int, obs_dim: int, act_dim: int, leaf_size: int) -> dict[str, int]:
    """Bytes of each index array from the shapes documented in ``NeighbourIndex``."""
    depth, cap = tree_shape(n, leaf_size)
    slots, nodes = 2**depth * cap, 2 ** (depth + 1) - 1
    out = {
        "states": (slots + MAX_BLOCK) * obs_dim * 4,
        "actions": (slots + MAX_BLOCK) * act_dim * 4,
        "rows": slots * 4,
        "positions": n * 4,
        "lo": nodes * (obs_dim + act_dim) * 4,
        "hi": nodes * (obs_dim + act_dim) * 4,
        "split_dim": nodes // 2 * 4,
        "split_val": nodes // 2 * 4,
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


def dense(rows: int, seed: int = 0):
    """``offreg/hopper-medium-v0`` tiled to ``rows`` rows, noise 0.01 on every copy but the first (a Dataset)."""
    import dataclasses

    import offreg
    from offreg.data import from_arrays

    base = offreg.load_dataset("offreg/hopper-medium-v0")
    t = jax.tree_util.tree_map(np.asarray, base.transitions)
    n = len(t.rewards)
    copies = -(-rows // n)
    rng = np.random.default_rng(seed)

    def tile(x, noisy):
        out = np.concatenate([x] * copies)[:rows]
        if noisy:
            out[n:] += rng.normal(scale=0.01, size=out[n:].shape).astype(np.float32)
        return out

    obs, next_obs = tile(t.observations, True), tile(t.next_observations, True)
    acts = np.clip(tile(t.actions, True), -1.0, 1.0)
    info = dataclasses.replace(base.info, name=f"hopper-medium-tiled-{rows}")
    return from_arrays(obs, acts, tile(t.rewards, False), next_obs, tile(t.terminals, False), info)


def _best_ms(fn, repeats: int = 3) -> float:
    """Fastest of ``repeats`` timed calls after one untimed call (compilation), in ms."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def measure_dense(rows: int, chunk: int, cache_dir: str | None) -> dict:
    """Build (and reload) the index on dense tiled data; time the search and PRDC against TD3+BC."""
    import jax.numpy as jnp

    from offreg.agents.names import get_spec
    from offreg.agents.neighbours import nearest
    from offreg.api import resolve_config
    from offreg.engine import scan_updates

    if cache_dir:
        os.environ["OFFREG_INDEX_CACHE"] = cache_dir
    dataset = dense(rows)
    res: dict = {"rows": rows, "obs_dim": dataset.info.obs_dim, "act_dim": dataset.info.act_dim}
    cfgs = {name: resolve_config(name, dataset) for name in ("td3bc", "prdc")}
    prepared = cfgs["prdc"].prepare(dataset)
    cls = get_spec("prdc").agent_cls
    t0 = time.perf_counter()
    index = jax.block_until_ready(cls.context(cfgs["prdc"], prepared))
    res["build_or_load_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(cls.context(cfgs["prdc"], prepared))
    res["second_context_seconds"] = time.perf_counter() - t0
    res["index_bytes"] = index_nbytes(index)["total"]
    # --- the search alone, 256 queries ---
    s, a = np.asarray(prepared.transitions.observations), np.asarray(prepared.transitions.actions)
    rng = np.random.default_rng(1)
    q = rng.integers(0, rows, 256)
    beta = jnp.float32(cfgs["prdc"].regularizer.beta)
    search = jax.jit(nearest)
    hint = jnp.asarray(a[q])  # the batch rows' own actions, as PRDC passes them
    for name, qa in {
        "policy_near_data_0.1": np.clip(a[q] + rng.normal(scale=0.1, size=a[q].shape), -1, 1),
        "policy_near_data": np.clip(a[q] + rng.normal(scale=0.3, size=a[q].shape), -1, 1),
        "initial_policy": rng.normal(scale=0.05, size=a[q].shape),
        "random_actions": rng.uniform(-1, 1, a[q].shape),
    }.items():
        qs, qa = jnp.asarray(s[q]), jnp.asarray(qa.astype(np.float32))
        call = functools.partial(search, index, beta, qs, qa, hint_actions=hint)
        out = call()
        res[f"search_{name}"] = {
            "ms_per_256_queries": _best_ms(call, repeats=7),
            "certified_fraction": float(np.mean(np.asarray(out.certified))),
            "leaves_per_query": float(out.leaves_per_query),
            "fallback_chunks": int(out.fallback_chunks),
        }
    # --- whole updates, same process ---
    run = jax.jit(scan_updates, static_argnums=3)
    for name, cfg in cfgs.items():
        spec = get_spec(name)
        data = cfg.prepare(dataset)
        context = index if name == "prdc" else ()
        agent = spec.agent_cls.create(cfg, data, jax.random.PRNGKey(0), context)
        key = jax.random.PRNGKey(1)

        def updates(agent=agent, data=data, context=context, key=key):
            return run(agent, data.transitions, key, chunk, context)[0]

        res[f"{name}_ms_per_update"] = _best_ms(updates) / chunk
        if name == "prdc":
            _, _, m = run(agent, data.transitions, key, chunk, context)
            res["prdc_train_certified_fraction"] = float(jnp.mean(m["certified_fraction"]))
            res["prdc_train_leaves_per_query"] = float(jnp.mean(m["leaves_per_query"]))
    res["prdc_cost_vs_td3bc"] = res["prdc_ms_per_update"] / res["td3bc_ms_per_update"]
    return res


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--leaf-size", type=int, default=8, help="rows per KD-tree leaf (PRDC's index_leaf_size)")
    p.add_argument("--build", dest="build", action="store_true", help="also build it (time, RSS)")
    p.add_argument("--no-build", dest="build", action="store_false")
    p.set_defaults(build=False)
    p.add_argument("--dense", type=int, default=None, metavar="ROWS",
                   help="build on tiled hopper-medium data of ROWS rows and time the search and updates")
    p.add_argument("--chunk", type=int, default=100, help="updates per timed call (--dense)")
    p.add_argument("--cache-dir", default=None, help="OFFREG_INDEX_CACHE (an empty folder times a build)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    command = " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    if args.dense:
        res = {"command": command, "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
               "backend": jax.default_backend(), **measure_dense(args.dense, args.chunk, args.cache_dir)}
        res["peak_host_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        res["load_average_at_end"] = os.getloadavg()
        print(json.dumps(res, indent=2))
        results = Path(__file__).parents[1] / "prdc_a2pr" / "results"
        out = Path(args.out or results / f"prdc_index_dense_{args.dense}.json")
        atomic_write_text(out, json.dumps(res, indent=2))
        print(f"wrote {out}")
        return res
    res: dict = {
        "command": command,
        "rows": args.rows, "obs_dim": args.obs_dim, "act_dim": args.act_dim, "leaf_size": args.leaf_size,
        "expected_bytes": expected_nbytes(args.rows, args.obs_dim, args.act_dim, args.leaf_size),
        "dataset_bytes_float32_states_actions": args.rows * (args.obs_dim + args.act_dim) * 4,
        "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "backend": jax.default_backend(),
    }
    if args.build:
        s, a = synthetic(args.rows, args.obs_dim, args.act_dim)
        t0 = time.perf_counter()
        index = build_index(s, a, leaf_size=args.leaf_size)
        jax.block_until_ready(index)
        res["build_seconds"] = time.perf_counter() - t0
        res["built_bytes"] = index_nbytes(index)
        res["peak_host_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert res["built_bytes"]["total"] == res["expected_bytes"]["total"]
    total = res["expected_bytes"]["total"]
    print(f"index for {args.rows} rows (obs {args.obs_dim}, act {args.act_dim}, leaf size {args.leaf_size}): "
          f"{total / 2**20:.1f} MiB on the device")
    if args.build:
        print(f"built in {res['build_seconds']:.1f} s; peak host RSS {res['peak_host_rss_bytes'] / 2**30:.2f} GiB")
    out = Path(args.out or Path(__file__).parents[1] / "prdc_a2pr" / "results" / f"prdc_index_{args.rows}.json")
    atomic_write_text(out, json.dumps(res, indent=2))
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
