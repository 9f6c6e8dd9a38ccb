"""Benchmark: loading a 2,000,000-row D4RL-format file, and the cost of on-device sampling.

Targets (the dataset issue): load in <= 5 s with peak memory <= 2x the arrays' size; sampling a
batch of 256 costs <= 5% of one TD3+BC update.

What is measured:

1. A hopper-shaped file in D4RL's layout (all the keys that
   ``Farama-Foundation/D4RL:scripts/generation/mujoco/collect_data.py`` writes, incl. ``next_observations``
   and ``infos/*``, gzip, a timeout every 1000 rows, a few terminals) of ``--rows`` rows is written
   to a temporary directory (not timed against the target).
2. ``load_dataset(path)`` runs in a fresh child process (``--repeats`` times): wall time from the
   call to the transitions being ready on the device, and peak memory as the process's peak RSS
   (``VmHWM`` of ``/proc/self/status``, reset to the current RSS just before the call by writing 5 to
   ``/proc/self/clear_refs``) minus its RSS just before the call (``/proc/self/statm``, after
   importing JAX and initialising the device). Not ``getrusage``'s ``ru_maxrss``: Linux carries it
   over ``exec`` from the forking parent, so a child of a large process reports the parent's peak. Its CPU time
   (``time.process_time``) is reported too, as the wall time depends on the machine's load. The arrays' size is the
   ``nbytes`` of the five float32 transition arrays.
3. Sampling cost, with the dataset on the device, each in a jitted ``lax.scan`` of ``--steps`` steps:
   (a) sampling only (``offreg.data.sample``, batch 256, the batch summed into the carry so nothing
   is dead code), (b) a TD3+BC update (``offreg.agents`` registry name ``td3bc``) on batches drawn
   beforehand (one per step), (c) sampling + update. The three scans run in ``--sample-repeats``
   interleaved rounds. Reported per step: the best times, (a)/(b), and the median over rounds of
   (c)/(b) - 1, the time sampling adds to an update.

Usage:  nice -n 10 python experiments/bench/data_loading.py [--rows 2000000] [--steps 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def write_file(path: Path, rows: int, obs_dim: int = 11, act_dim: int = 3, seed: int = 0) -> None:
    """A D4RL-layout hopper-shaped file (float32, gzip), written in 250k-row chunks."""
    rng = np.random.default_rng(seed)
    chunk = 250_000
    with h5py.File(path, "w") as f:
        spec = {
            "observations": (obs_dim,), "actions": (act_dim,), "rewards": (), "next_observations": (obs_dim,),
            "infos/action_log_probs": (), "infos/qpos": (6,), "infos/qvel": (6,),
        }
        dsets = {k: f.create_dataset(k, (rows, *s), np.float32, compression="gzip") for k, s in spec.items()}
        term = f.create_dataset("terminals", (rows,), bool, compression="gzip")
        tout = f.create_dataset("timeouts", (rows,), bool, compression="gzip")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            for k, s in spec.items():
                dsets[k][start : start + n] = rng.normal(size=(n, *s)).astype(np.float32)
            idx = np.arange(start, start + n)
            tout[start : start + n] = (idx % 1000) == 999
            term[start : start + n] = (rng.random(n) < 1e-3) & ((idx % 1000) != 999)
        f["metadata/algorithm"] = np.bytes_(b"SAC")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Make the peak RSS (``VmHWM``) the current RSS, so :func:`peak_rss_bytes` measures from here."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_rss_bytes() -> int:
    """This process's peak RSS since it started or since :func:`reset_peak_rss` (``VmHWM``)."""
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def load_child(path: str) -> None:
    """Run in a fresh process: time ``load_dataset`` and measure its peak RSS increase."""
    import jax
    import jax.numpy as jnp

    from offreg.data import load_dataset

    jnp.zeros(1).block_until_ready()
    reset_peak_rss()
    before = _rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    ds = load_dataset(path, env="hopper", progress=False)
    jax.block_until_ready(ds.transitions)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss_bytes()
    nbytes = sum(int(x.nbytes) for x in jax.tree_util.tree_leaves(ds.transitions))
    print(json.dumps({
        "load_s": seconds, "load_cpu_s": cpu, "peak_increase_bytes": peak - before, "arrays_bytes": nbytes,
        "transitions": len(ds), "episodes": int(ds.info.num_episodes),
    }))


def sampling_cost(path: str, steps: int, batch_size: int = 256, repeats: int = 10) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    from offreg.agents.names import get_spec
    from offreg.data import load_dataset, sample

    spec = get_spec("td3bc")
    config = spec.default_config()
    ds = config.prepare(load_dataset(path, env="hopper", progress=False))
    agent = spec.agent_cls.create(config, ds, jax.random.PRNGKey(0))
    data = ds.transitions
    # distinct batches drawn beforehand: an update on one fixed batch is faster than on fresh data
    # (XLA hoists batch-only work out of the loop and the batch stays in cache), so it is no baseline
    batches = jax.vmap(lambda k: sample(data, k, batch_size))(jax.random.split(jax.random.PRNGKey(1), steps))

    @jax.jit
    def sample_only(data, key):
        def body(acc, k):
            b = sample(data, k, batch_size)
            return acc + sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(b)), None

        return jax.lax.scan(body, jnp.float32(0), jax.random.split(key, steps))[0]

    @jax.jit
    def update_only(agent, batches, key):
        def body(a, xs):
            batch, k = xs
            _, k2 = jax.random.split(k)
            return a.update(batch, k2)

        return jax.lax.scan(body, agent, (batches, jax.random.split(key, steps)))

    @jax.jit
    def sample_and_update(agent, data, key):
        def body(a, k):
            k1, k2 = jax.random.split(k)
            return a.update(sample(data, k1, batch_size), k2)

        return jax.lax.scan(body, agent, jax.random.split(key, steps))

    runs = {"s": (sample_only, (data,)), "u": (update_only, (agent, batches)), "su": (sample_and_update, (agent, data))}
    for fn, args in runs.values():
        jax.block_until_ready(fn(*args, jax.random.PRNGKey(2)))  # compile
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats):  # interleaved rounds: load changes on a shared machine hit all three alike
        for name, (fn, args) in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args, jax.random.PRNGKey(10 + r)))
            times[name].append((time.perf_counter() - t0) / steps)
    t = {k: np.asarray(v) for k, v in times.items()}
    s, u, su = (float(t[k].min()) for k in ("s", "u", "su"))
    return {
        "sample_us": s * 1e6, "update_us": u * 1e6, "sample_and_update_us": su * 1e6,
        "sample_over_update_pct": 100 * s / u,
        "added_by_sampling_pct": 100 * float(np.median(t["su"] / t["u"] - 1)),
        "device": str(jax.devices()[0]), "steps": steps, "batch_size": batch_size, "repeats": repeats,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--steps", type=int, default=200, help="scan length of the sampling measurement")
    p.add_argument("--repeats", type=int, default=3, help="fresh-process loads")
    p.add_argument("--sample-repeats", type=int, default=10, help="timed runs of each sampling scan")
    p.add_argument("--json", type=str, default=None, help="also write the results to this file")
    p.add_argument("--_load-child", dest="load_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load_child:
        load_child(args.load_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hopper_bench.hdf5"
        t0 = time.perf_counter()
        write_file(path, args.rows)
        print(f"wrote {args.rows:,} rows, {path.stat().st_size / 2**20:.1f} MiB, in {time.perf_counter() - t0:.1f} s")
        loads = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, __file__, "--_load-child", str(path)], check=True,
                                 capture_output=True, text=True)
            loads.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = min(loads, key=lambda r: r["load_s"])
        ratio = max(r["peak_increase_bytes"] for r in loads) / best["arrays_bytes"]
        times = ", ".join(f"{r['load_s']:.2f}" for r in loads)
        print(f"load: {times} s wall (best {best['load_s']:.2f} s, target <= 5; its CPU time "
              f"{best['load_cpu_s']:.2f} s; load average {os.getloadavg()[0]:.1f})")
        print(f"transitions {best['transitions']:,}, arrays {best['arrays_bytes'] / 2**20:.0f} MiB, peak RSS increase "
              f"{max(r['peak_increase_bytes'] for r in loads) / 2**20:.0f} MiB = {ratio:.2f}x (target <= 2)")
        cost = sampling_cost(str(path), args.steps, repeats=args.sample_repeats)
        print(f"per step on {cost['device']}: sample {cost['sample_us']:.1f} us, "
              f"TD3+BC update {cost['update_us']:.1f} us, both {cost['sample_and_update_us']:.1f} us")
        print(f"sampling / update = {cost['sample_over_update_pct']:.2f}%; added to an update by sampling = "
              f"{cost['added_by_sampling_pct']:.2f}% (target <= 5%)")
        if args.json:
            Path(args.json).write_text(json.dumps({"loads": loads, "peak_ratio": ratio, "sampling": cost,
                                                   "rows": args.rows}, indent=2))


if __name__ == "__main__":
    main()
