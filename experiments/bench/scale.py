"""Scale benchmark: offreg on D4RL-sized files (100k, 1M, 2M rows) made from bundled data.

Each file is made the same way (:func:`write_scaled`): the bundled
``offreg/hopper-medium-v0`` (100,000 rows, 11-dim states, 3-dim actions), cut at its last complete
episode, tiled until it has ``rows`` rows, with ``N(0, 0.01)`` noise added to the observations and
the actions (actions clipped to [-1, 1]); terminals and timeouts are tiled with the rows, so every
tile's episodes end where the original's did and the file's last episode is unfinished, as in D4RL.
``next_observations`` is the next row's noisy observation within an episode. The files live in a
temporary directory and are deleted at the end.

For every size, each part in a fresh process (so one size's memory does not inflate the next):

1. **load**: ``load_dataset(path, env="hopper")`` (``experiments/bench/data_loading.py``'s child):
   wall and CPU seconds, and the peak RSS increase over the process's after-import RSS, against the
   bytes of the transition arrays.
2. **train** (one process): both agents' ``config.prepare`` (observation normalization), PRDC's
   dataset context built through the engine (``offreg.engine.dataset_context``, i.e. ``Agent.context``):
   build seconds and its bytes (all array leaves); then TD3+BC and PRDC, one seed each, batch 256, in
   the same process: ``offreg.engine.train_chunk`` of ``--steps`` updates, called once to compile
   (and train), then timed: ``--repeats`` rounds of one call of each agent, alternating, so both
   are timed under the same load; each agent's best call counts (no further rounds once a call
   takes over 30 s).
   PRDC's ``certified_fraction``, ``leaves_per_query`` and ``fallback_chunks`` are the means over the
   timed calls. The timed calls run right after initialization (the policy far from the data: the
   search's hardest queries) and again after ``--warmup`` more updates of each agent. Last, the
   official PRDC code's search for comparison: ``scipy.spatial.cKDTree`` on ``[beta * s, a]``
   (beta = 2, normalized states), build seconds and the median seconds of ``query(keys, k=1,
   workers=-1)`` on batches of 256 keys ``[beta * s, pi(s)]`` (states of random rows, ``pi`` the PRDC
   policy just trained).
3. **cache**: the files the context build left in the data directories (``OFFREG_DATA_DIR``,
   ``D4RL_DATASET_DIR``, ``XDG_CACHE_HOME`` are temporary directories here, and the file's own
   directory is watched too). When it left any (an on-disk index cache), a fresh process times the
   context again (the cache load); then two more fresh processes, one after the other, each run
   ``offreg.train(agent="prdc", dataset=path, steps=1, log_every=1, eval_every=0)`` and report the
   seconds from their launch (and from the ``train`` call) to the engine's first callback, i.e. the
   first update done: the first of them loads the cached index and compiles the training program
   (which ``offreg.train`` keeps in its compilation cache, ``<OFFREG_DATA_DIR>/compile_cache``), the
   second loads both, i.e. how soon a second ``offreg train --agent prdc`` starts updating. Without
   an index cache these are ``null`` (a second run would build the index again).

Usage::

    nice -n 10 .venv/bin/python experiments/bench/scale.py --sizes 100000 --steps 100
    nice -n 10 .venv/bin/python experiments/bench/scale.py --sizes 100000,1000000,2000000 \
        --out experiments/bench/results/scale.json

``--files a.hdf5,b.hdf5`` measures existing Hopper D4RL-format files the same way instead (e.g. the
``hopper-medium.hdf5`` of ``offreg collect --env hopper --levels medium --level-steps 1000000``: real
rollouts rather than tiles; the file is left where it is, its ``metadata/*`` summary goes to the JSON)::

    .venv/bin/python experiments/bench/scale.py --files /tmp/collect/hopper-medium.hdf5 --out scale-collect.json

Writes JSON to ``--out`` (default ``experiments/bench/results/scale.json``); ``search`` names the
commit the run used and the last commit that changed PRDC's search. ``--table FILE`` prints the
markdown table of docs/benchmarks.md from such a file.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alternate import alternate, paired_ratio  # noqa: E402  (beside this file)

ROOT = Path(__file__).resolve().parents[2]
BASE = "offreg/hopper-medium-v0"
SEARCH_FILES = ("offreg/agents/neighbours.py", "offreg/agents/neighbour_index.py", "offreg/agents/neighbour_tree.py",
                "offreg/agents/neighbour_scan.py")
CACHE_ENV = ("OFFREG_DATA_DIR", "D4RL_DATASET_DIR", "XDG_CACHE_HOME")
LONG_CALL_S = 30.0


# --- data ------------------------------------------------------------------------------------------
def base_arrays(name: str = BASE) -> dict[str, np.ndarray]:
    """The D4RL arrays of a bundled dataset (built on first use), cut at its last complete episode."""
    from offreg.data import download_dataset

    path = download_dataset(name, progress=False)
    with h5py.File(path, "r") as f:
        data = {k: f[k][:] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                     "next_observations")}
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    return {k: v[: int(ends[-1]) + 1] for k, v in data.items()}


def scaled_arrays(base: dict[str, np.ndarray], rows: int, noise: float = 0.01, seed: int = 0) -> dict[str, np.ndarray]:
    """``base`` tiled to ``rows`` rows with ``N(0, noise)`` added to observations and actions (float32).

    Episode ends (terminals, timeouts) are tiled with their rows; ``next_observations[i]`` is the
    noisy ``observations[i + 1]`` except at an episode end or the last row, where it is the base's
    own next observation plus fresh noise.
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(rows) % len(base["rewards"])
    out = {k: base[k][idx] for k in ("rewards", "terminals", "timeouts")}
    obs = base["observations"][idx]
    obs += noise * rng.standard_normal(obs.shape, np.float32)
    act = base["actions"][idx]
    act += noise * rng.standard_normal(act.shape, np.float32)
    np.clip(act, -1.0, 1.0, out=act)
    nxt = np.empty_like(obs)
    nxt[:-1] = obs[1:]
    ends = np.flatnonzero(out["terminals"] | out["timeouts"] | (np.arange(rows) == rows - 1))
    fresh = noise * rng.standard_normal((len(ends), obs.shape[1]), np.float32)
    nxt[ends] = base["next_observations"][idx[ends]] + fresh
    out.update(observations=obs, actions=act, next_observations=nxt)
    return out


def write_scaled(path: str | os.PathLike, rows: int, base: dict[str, np.ndarray] | None = None,
                 noise: float = 0.01, seed: int = 0, name: str = BASE) -> dict[str, Any]:
    """Write :func:`scaled_arrays` of ``base`` (default: :func:`base_arrays` of ``name``) as a D4RL
    HDF5 file (gzip, as D4RL's own); returns a description."""
    from offreg.data.d4rl import write_d4rl

    base = base_arrays(name) if base is None else base
    t0 = time.perf_counter()
    data = scaled_arrays(base, rows, noise, seed)
    write_d4rl(path, data, {"scaled_from": name, "noise_std": float(noise), "seed": int(seed)})
    return {"rows": rows, "file_mib": Path(path).stat().st_size / 2**20, "write_s": time.perf_counter() - t0,
            "episodes_ended": int(np.count_nonzero(data["terminals"] | data["timeouts"])),
            "base": name, "base_rows": len(base["rewards"]), "noise_std": noise}


# --- children (each in a fresh process) ----------------------------------------------------------
def _watched() -> list[Path]:
    """Where an on-disk index cache could be written: the data directories and the dataset's folder."""
    return [Path(os.environ[k]) for k in CACHE_ENV if os.environ.get(k)]


def _files(dirs: list[Path]) -> dict[str, int]:
    return {str(p): p.stat().st_size for d in dirs if d.is_dir() for p in d.rglob("*") if p.is_file()}


def prepared_for(name: str, path: str) -> tuple[Any, Any, Any]:
    """``(spec, config, prepared dataset)`` of agent ``name`` with its default config on ``path``."""
    from offreg.agents.names import get_spec
    from offreg.data import load_dataset

    spec = get_spec(name)
    config = spec.default_config()
    return spec, config, config.prepare(load_dataset(path, env="hopper", progress=False))


def timed_context(spec: Any, config: Any, prepared: Any) -> tuple[Any, float]:
    """PRDC's dataset context through the engine, and the seconds it took (build or cache load)."""
    import jax

    from offreg.engine import dataset_context

    t0 = time.perf_counter()
    context = dataset_context(spec.agent_cls, config, prepared)
    jax.block_until_ready(context)
    return context, time.perf_counter() - t0


def update_rate(spec: Any, config: Any, prepared: Any, context: Any, steps: int, repeats: int,
                seeds: int = 1, warmup: int = 0) -> dict[str, Any]:
    """:func:`update_rates` of one agent."""
    return update_rates({"agent": (spec, config, prepared, context)}, steps, repeats, seeds, warmup)["agent"]


def update_rates(agents: dict[str, tuple[Any, Any, Any, Any]], steps: int, repeats: int, seeds: int = 1,
                 warmup: int = 0) -> dict[str, dict[str, Any]]:
    """Updates/s of each agent (``name -> (spec, config, prepared, context)``), ``seeds`` vmapped seeds,
    in the engine's ``train_chunk`` (``steps`` updates per call), after a first call that compiles.

    The agents' timed calls alternate (one call of each, ``repeats`` rounds, fewer when a call exceeds
    30 s) and each agent's best call counts, so every agent is timed under the same machine load.
    ``updates_per_s`` counts the updates of one seed; ``agents`` are the trained ones. The timed rounds
    run twice: right after initialization (``at_init``: the policy far from the data, the search's
    hardest queries) and again after ``warmup`` more updates of each agent (``after_warmup``, ``None``
    when ``warmup`` is 0)."""
    import jax
    import jax.numpy as jnp

    from offreg.engine import create_seeds, train_chunk
    from offreg.seeds import seed_keys

    state = {name: {"a": create_seeds(spec.agent_cls, config, prepared, list(range(seeds)), context),
                    "k": jnp.stack([seed_keys(i)[1] for i in range(seeds)])}
             for name, (spec, config, prepared, context) in agents.items()}

    def call(name: str) -> dict[str, Any]:
        _, _, prepared, context = agents[name]
        a, k, metrics, _ = train_chunk(state[name]["a"], prepared.transitions, state[name]["k"], steps, context)
        metrics = jax.device_get(metrics)
        state[name]["a"], state[name]["k"] = a, k
        return metrics

    def timed() -> dict[str, dict[str, Any]]:
        calls = alternate({name: functools.partial(call, name) for name in agents}, repeats, LONG_CALL_S)
        out = {}
        for name, rec in calls.items():
            out[name] = {"updates_per_s": steps / min(rec["seconds"]),
                         "updates_per_cpu_s": steps / min(rec["cpu_seconds"]),
                         "call_seconds": rec["seconds"], "call_cpu_seconds": rec["cpu_seconds"]}
            for key in ("certified_fraction", "leaves_per_query", "fallback_chunks", "nn_distance"):
                if key in rec["results"][0]:
                    out[name][key] = float(np.mean([np.mean(m[key]) for m in rec["results"]]))
        return out

    def first_call(name: str) -> float:
        t0 = time.perf_counter()
        call(name)
        return time.perf_counter() - t0

    first = {name: first_call(name) for name in agents}
    at_init = timed()
    res = {name: {**at_init[name], "compile_and_first_call_s": first[name], "steps_per_call": steps,
                  "seeds": seeds, "batch_size": agents[name][1].batch_size, "at_init": at_init[name],
                  "after_warmup": None} for name in agents}
    if warmup:
        calls = max(1, warmup // steps)
        seconds = {}
        for name in agents:
            t0 = time.perf_counter()
            for _ in range(calls):
                call(name)
            seconds[name] = time.perf_counter() - t0
        after = timed()
        for name in agents:
            res[name]["after_warmup"] = {**after[name], "warmup_updates": calls * steps, "warmup_s": seconds[name]}
    for name in agents:
        res[name]["agents"] = state[name]["a"]
    return res


def train_child(path: str, steps: int, repeats: int, batches: int, warmup: int = 0,
                beta: float = 2.0) -> dict[str, Any]:
    """Index build, TD3+BC and PRDC updates/s in one process, and the official-style KD-tree search."""
    from scipy.spatial import cKDTree

    from offreg.data import load_dataset
    from offreg.seeds import index_seed

    watched = [*_watched(), Path(path).parent]
    before = _files(watched)
    spec, config, prepared = prepared_for("prdc", path)
    context, build_s = timed_context(spec, config, prepared)
    new = {p: s for p, s in _files(watched).items() if before.get(p) != s}
    import jax

    out: dict[str, Any] = {
        "index_build_s": build_s,
        "index_bytes": int(sum(x.nbytes for x in jax.tree_util.tree_leaves(context) if hasattr(x, "nbytes"))),
        "index_cache_files": new, "transitions": len(prepared),
    }
    rates = update_rates({"td3bc": (*prepared_for("td3bc", path), ()), "prdc": (spec, config, prepared, context)},
                         steps, repeats, warmup=warmup)
    out["td3bc"], out["prdc"] = rates["td3bc"], rates["prdc"]
    out["prdc_cost_vs_td3bc"] = out["td3bc"]["updates_per_s"] / out["prdc"]["updates_per_s"]
    out["prdc_cost_vs_td3bc_paired"] = paired_ratio(out["td3bc"]["call_seconds"], out["prdc"]["call_seconds"])
    if warmup:
        out["prdc_cost_vs_td3bc_after_warmup_paired"] = paired_ratio(
            out["td3bc"]["after_warmup"]["call_seconds"], out["prdc"]["after_warmup"]["call_seconds"])
        out["prdc_cost_vs_td3bc_after_warmup"] = (out["td3bc"]["after_warmup"]["updates_per_s"]
                                                  / out["prdc"]["after_warmup"]["updates_per_s"])
    agent = index_seed(out["prdc"].pop("agents"), 0)
    out["td3bc"].pop("agents")
    # --- the official code's search: scipy KD-tree on [beta * s, a], one query per actor step ---
    states = np.asarray(prepared.transitions.observations, np.float32)
    keys = np.hstack([np.float32(beta) * states, np.asarray(prepared.transitions.actions, np.float32)])
    t0 = time.perf_counter()
    tree = cKDTree(keys)
    tree_s = time.perf_counter() - t0
    raw_obs = np.asarray(load_dataset(path, env="hopper", progress=False).transitions.observations)
    rng = np.random.default_rng(0)
    seconds = []
    for _ in range(batches):
        rows = rng.integers(0, len(states), 256)
        q = np.hstack([np.float32(beta) * states[rows], np.asarray(agent.act(raw_obs[rows]))])
        t0 = time.perf_counter()
        tree.query(q, k=1, workers=-1)
        seconds.append(time.perf_counter() - t0)
    out["kdtree"] = {"beta": beta, "build_s": tree_s, "query_256_s_median": float(np.median(seconds)),
                     "query_256_s": seconds, "batches": batches}
    return out


def cache_child(path: str) -> dict[str, Any]:
    """The context again in a fresh process: with an index cache on disk, its load time."""
    spec, config, prepared = prepared_for("prdc", path)
    return {"index_load_s": timed_context(spec, config, prepared)[1]}


def train_run_child(path: str, launched: float) -> dict[str, Any]:
    """A fresh ``offreg.train(agent="prdc")`` on the file: seconds to its first update's callback."""
    import offreg

    t0, first = time.time(), []
    offreg.train("prdc", path, steps=1, log_every=1, eval_every=0, progress=False,
                 callback=lambda *_: first.append(time.time()))
    return {"first_update_from_launch_s": first[0] - launched, "first_update_from_train_call_s": first[0] - t0}


# --- driver ---------------------------------------------------------------------------------------
def _child(args: list[str], env: dict[str, str], script: Path = Path(__file__)) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(script), *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def run_size(rows: int, base: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one size (:func:`measure`), its file in a temporary directory deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="offreg-scale-") as tmp:
        path = str(Path(tmp) / "files" / f"hopper-scaled-{rows}.hdf5")
        Path(path).parent.mkdir()
        res: dict[str, Any] = {"rows": rows, "data": f"tiled {BASE}",
                               "file": write_scaled(path, rows, base, args.noise)}
        print(f"{rows:,} rows: wrote {res['file']['file_mib']:.0f} MiB in {res['file']['write_s']:.1f} s", flush=True)
        return measure(path, res, args, tmp)


def describe_file(path: str) -> dict[str, Any]:
    """An existing D4RL-format file read and validated by offreg's reader (``DatasetError`` if it is
    missing, truncated or corrupt): its path, rows, size and scalar ``metadata/*``."""
    from offreg.data.d4rl import read_d4rl_file

    raw = read_d4rl_file(path)
    return {"path": str(path), "rows": len(raw["rewards"]), "file_mib": Path(path).stat().st_size / 2**20,
            "metadata": raw["metadata"]}


def run_file(file: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of an existing Hopper D4RL-format file (``--files``; ``file`` from :func:`describe_file`)."""
    path = Path(file["path"])
    res: dict[str, Any] = {"rows": file["rows"], "data": f"{path.parent.name}/{path.name}", "file": file}
    print(f"{file['rows']:,} rows: {path}", flush=True)
    with tempfile.TemporaryDirectory(prefix="offreg-scale-") as tmp:
        return measure(str(path), res, args, tmp)


def measure(path: str, res: dict[str, Any], args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    """Load, train, cache and first-update measurements of the file ``path`` into ``res``, every data
    directory (and the compilation cache) a fresh one under ``tmp``."""
    env = dict(os.environ)
    for k in CACHE_ENV:
        env[k] = str(Path(tmp) / k.lower())
    env["OFFREG_COMPILE_CACHE"] = str(Path(tmp) / "compile_cache")  # fresh: the first run compiles
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    res["load"] = _child(["--_load-child", path], env, Path(__file__).with_name("data_loading.py"))
    res["load"]["peak_over_arrays"] = res["load"]["peak_increase_bytes"] / res["load"]["arrays_bytes"]
    print(f"  load {res['load']['load_s']:.2f} s, peak {res['load']['peak_over_arrays']:.2f}x arrays", flush=True)
    res["train"] = _child(["--_child", "train", path, "--steps", str(args.steps), "--repeats",
                           str(args.repeats), "--batches", str(args.batches), "--warmup", str(args.warmup)], env)
    t = res["train"]
    print(f"  index {t['index_build_s']:.1f} s; td3bc {t['td3bc']['updates_per_s']:.0f}/s, prdc "
          f"{t['prdc']['updates_per_s']:.1f}/s ({t['prdc_cost_vs_td3bc']:.2f}x); kd-tree "
          f"{1e3 * t['kdtree']['query_256_s_median']:.1f} ms per 256", flush=True)
    if t["index_cache_files"]:
        res["cache"] = _child(["--_child", "cache", path], env)
        res["first_run"] = _child(["--_child", "run", path, "--launched", repr(time.time())], env)
        res["second_run"] = _child(["--_child", "run", path, "--launched", repr(time.time())], env)
        print(f"  cache load {res['cache']['index_load_s']:.1f} s, first update after "
              f"{res['first_run']['first_update_from_launch_s']:.1f} s (index cached) and "
              f"{res['second_run']['first_update_from_launch_s']:.1f} s (program cached too)", flush=True)
    else:
        why = "n/a until merged: the index has no on-disk cache at this commit (a second run builds it again)"
        res["cache"] = {"index_load_s": None, "note": why}
        res["first_run"] = res["second_run"] = {"first_update_from_launch_s": None, "note": why}
    return res


def table(res: dict[str, Any]) -> str:
    """The markdown table of docs/benchmarks.md ("Scale") from a results JSON."""
    def f(x: Any, fmt: str) -> str:
        return "n/a" if x is None else format(x, fmt)

    head = ("| data | rows | load s (CPU s) | peak / arrays | index build s | index MiB | index cache load s | "
            "TD3+BC upd/s | PRDC upd/s at init | PRDC / TD3+BC at init (paired) | PRDC upd/s after warm-up | "
            "PRDC / TD3+BC after warm-up (paired) | leaves per query (init, warm) | KD-tree ms per 256 (build s) | "
            "first update s: index cached, program too |")
    lines = [head, "|" + "---:|" * head.count(" |")]
    for r in res["sizes"]:
        ld, t = r["load"], r["train"]
        w = t["prdc"].get("after_warmup")
        lines.append(
            f"| {r.get('data', 'tiled ' + res.get('base', BASE))} | {r['rows']:,} | "
            f"{ld['load_s']:.2f} ({ld['load_cpu_s']:.2f}) | {ld['peak_over_arrays']:.2f}x | "
            f"{t['index_build_s']:.1f} | {t['index_bytes'] / 2**20:.0f} | {f(r['cache']['index_load_s'], '.1f')} | "
            f"{t['td3bc']['updates_per_s']:.0f} | "
            f"{t['prdc']['updates_per_s']:.1f} | {t['prdc_cost_vs_td3bc']:.2f}x "
            f"({f(t.get('prdc_cost_vs_td3bc_paired'), '.2f')}x) | {f(w and w['updates_per_s'], '.1f')} | "
            f"{f(t.get('prdc_cost_vs_td3bc_after_warmup'), '.2f')}x "
            f"({f(t.get('prdc_cost_vs_td3bc_after_warmup_paired'), '.2f')}x) | "
            f"{t['prdc']['leaves_per_query']:.1f}, {f(w and w['leaves_per_query'], '.1f')} | "
            f"{1e3 * t['kdtree']['query_256_s_median']:.1f} ({t['kdtree']['build_s']:.1f}) | "
            f"{f(r.get('first_run', {}).get('first_update_from_launch_s'), '.1f')}, "
            f"{f(r['second_run']['first_update_from_launch_s'], '.1f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000,2000000", help="comma-separated row counts")
    p.add_argument("--steps", type=int, default=200, help="updates per timed engine call (both agents)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed rounds, one call of each agent per round (one round if a call takes > 30 s)")
    p.add_argument("--batches", type=int, default=20, help="KD-tree query batches of 256")
    p.add_argument("--warmup", type=int, default=2000,
                   help="updates of each agent between the timed calls at initialization and the second timed calls")
    p.add_argument("--files", default="", help="comma-separated Hopper D4RL-format files (e.g. from `offreg "
                   "collect`) measured instead of the tiled sizes")
    p.add_argument("--noise", type=float, default=0.01, help="std of the noise added to observations and actions")
    p.add_argument("--out", default=str(ROOT / "experiments" / "bench" / "results" / "scale.json"))
    p.add_argument("--table", default=None, metavar="JSON", help="print the markdown table of a results file")
    p.add_argument("--_child", dest="child", nargs=2, default=None, help=argparse.SUPPRESS)
    p.add_argument("--launched", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.table:
        res = json.loads(Path(args.table).read_text())
        print(table(res))
        return res
    if args.child:
        kind, path = args.child
        out = {"train": lambda: train_child(path, args.steps, args.repeats, args.batches, args.warmup),
               "cache": lambda: cache_child(path),
               "run": lambda: train_run_child(path, args.launched)}[kind]()
        print(json.dumps(out))
        return out
    from offreg.errors import OffregError

    try:  # every file checked before anything runs
        files = [describe_file(f) for f in args.files.split(",") if f]
    except OffregError as e:
        raise SystemExit(f"scale.py: --files: {e}") from None
    import jax

    from offreg.atomic import atomic_write_text

    res: dict[str, Any] = {
        "command": " ".join(["experiments/bench/scale.py", *(argv if argv is not None else sys.argv[1:])]),
        "search": {"commit": _git("rev-parse", "--short", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
                   "search_last_changed": _git("log", "-1", "--format=%h %s", "--", *SEARCH_FILES)},
        "jax": jax.__version__, "device": str(jax.devices()[0]), "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg()[0], "base": BASE, "noise_std": args.noise, "sizes": [],
    }
    if args.files:
        for file in files:
            res["sizes"].append(run_file(file, args))
    else:
        base = base_arrays()
        for rows in (int(x) for x in args.sizes.split(",")):
            res["sizes"].append(run_size(rows, base, args))
    res["load_average_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(res, indent=2) + "\n")
    print(table(res))
    print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
