"""Gradient updates per second of offreg's TD3-shaped agents against PyTorch baselines, in one run.

Measures, on one machine and one synthetic HalfCheetah-sized dataset (obs 17, act 6, batch 256,
256-256 networks unless an agent's defaults say otherwise), or on a registered dataset with
``--dataset NAME`` (e.g. ``offreg/hopper-medium-replay-v0``: PRDC's neighbour index certifies far more
queries on real trajectories than on the random walk):

- offreg: ``K`` updates per jitted ``lax.scan`` call with on-device sampling (the engine's
  ``offreg.engine.scan_updates``), for each agent in ``--agents`` (any registered agent with
  gradient updates; TD3-shaped agents also get a FLOP count); the agents' timed calls alternate,
  ``--repeats`` rounds, each agent's fastest call counting, so all are timed under the same load;
- (a) a plain PyTorch TD3+BC loop written as the official ``sfujim/TD3_BC`` code: ``np.random``
  batch indices on the host, tensors built per step, one update per Python iteration;
- (b) d3rlpy's ``TD3PlusBC`` (same sizes, batch 256), driven by its own ``update`` on batches from
  ``sample_transition_batch`` (what ``fit`` does, minus logging);
- (c) with ``--baselines d3rlpy-prdc``: d3rlpy's ``PRDC`` (alpha 2.5, beta 2.0) the same way, its
  ``NearestNeighbors`` fitted on ``[beta * s, a]`` as its ``fit`` does (a CPU query every actor step);
- with ``prdc``/``a2pr`` among ``--agents``: their cost per update relative to ``td3bc``'s;
- the machine's dense float32 matmul rate with ``jnp.dot`` at the update's shapes, offreg's achieved
  GFLOP/s (matmul FLOPs of one update, counted analytically) and its fraction of that rate;
- the cost of ``--seeds`` vmapped seeds (``offreg.engine.train_chunk``) relative to one seed.

Usage::

    nice -n 10 .venv/bin/python experiments/bench/throughput.py
    .venv/bin/python experiments/bench/throughput.py --agents td3bc,prdc,a2pr --baselines none --quick

Writes a table to stdout and JSON to ``experiments/bench/results/throughput.json`` (``--out``).
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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents.base import is_gradient_free
from offreg.agents.names import get_spec
from offreg.agents.td3 import TD3Agent, TD3Config
from offreg.atomic import atomic_write_text
from offreg.data import DatasetInfo, from_arrays
from offreg.engine import create_seeds, dataset_context, scan_updates, train_chunk
from offreg.seeds import seed_keys

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alternate import alternate, paired_ratio  # noqa: E402  (beside this file)

TARGETS = {"vs_torch": 2.0, "vs_d3rlpy": 20.0, "matmul_fraction": 0.70, "seeds_ratio_max": 4.5}


# --- data ----------------------------------------------------------------------------------------
def synthetic_arrays(n: int, obs_dim: int, act_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random-walk trajectories of 1000 steps (timeouts at each end), tanh actions, benchmark data only."""
    rng = np.random.default_rng(seed)
    obs = np.cumsum(rng.normal(size=(n + 1, obs_dim)) * 0.1, axis=0).astype(np.float32)
    actions = np.tanh(rng.normal(size=(n, act_dim))).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    terminals = np.zeros(n, np.float32)
    timeouts = np.zeros(n, np.float32)
    timeouts[999::1000] = 1.0
    return {"observations": obs[:-1], "next_observations": obs[1:], "actions": actions, "rewards": rewards,
            "terminals": terminals, "timeouts": timeouts}


def dataset_arrays(name: str) -> dict[str, np.ndarray]:
    """The transitions of a registered dataset as the baselines' NumPy arrays (timeouts at episode ends)."""
    from offreg.data import load_dataset
    from offreg.errors import OffregError

    try:
        ds = load_dataset(name)
    except OffregError as e:
        raise SystemExit(f"throughput.py: {e}") from None
    t = ds.transitions
    arrays = {k: np.asarray(getattr(t, k), np.float32)
              for k in ("observations", "actions", "rewards", "next_observations", "terminals")}
    timeouts = np.zeros(len(ds), np.float32)
    ends = list(ds.episode_starts[1:]) + [len(ds)] if ds.episode_ends is None else list(ds.episode_ends)
    timeouts[np.asarray(ends, np.int64) - 1] = 1.0
    arrays["timeouts"] = np.where(arrays["terminals"] > 0, 0.0, timeouts).astype(np.float32)
    return arrays


def offreg_dataset(arrays: dict[str, np.ndarray]) -> Any:
    n, obs_dim = arrays["observations"].shape
    info = DatasetInfo("bench-synthetic", "file", None, obs_dim, arrays["actions"].shape[1], n)
    return from_arrays(arrays["observations"], arrays["actions"], arrays["rewards"], arrays["next_observations"],
                       arrays["terminals"], info)


# --- FLOPs ---------------------------------------------------------------------------------------
def _mlp_layers(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> list[tuple[int, int]]:
    dims = [in_dim, *hidden, out_dim]
    return list(zip(dims[:-1], dims[1:], strict=True))


def td3_update_flops(obs_dim: int, act_dim: int, cfg: TD3Config) -> dict[str, float]:
    """Matmul FLOPs (2 per multiply-add) of the TD3 backbone's updates, averaged per update.

    Per update: target actor forward on s'; both target critics forward; both online critics
    forward, weight gradients and input gradients (none for the first layer, whose input is data).
    Every ``policy_freq`` updates: actor forward; Q1 forward on (s, pi(s)); Q1 input gradients only
    (its weights are constant in the actor loss; the first layer's input gradient is counted in full);
    actor weight and input gradients (none for its first layer). Elementwise work (activations,
    Adam, Polyak, sampling) and the regularizer's own work are not counted.
    """
    b = cfg.batch_size
    actor = _mlp_layers(obs_dim, cfg.actor_hidden_dims, act_dim)
    critic = _mlp_layers(obs_dim + act_dim, cfg.critic_hidden_dims, 1)
    fwd = lambda layers: sum(2 * b * i * o for i, o in layers)
    in_grad = lambda layers, first=True: sum(2 * b * i * o for n, (i, o) in enumerate(layers) if first or n > 0)
    critic_step = fwd(actor) + 2 * fwd(critic) + 2 * (2 * fwd(critic) + in_grad(critic, first=False))
    actor_step = fwd(actor) + fwd(critic) + in_grad(critic) + fwd(actor) + in_grad(actor, first=False)
    return {"critic_step": float(critic_step), "actor_step": float(actor_step),
            "per_update": float(critic_step + actor_step / cfg.policy_freq)}


def xla_update_flops(agent: Any, transitions: Any, batch_size: int, context: Any = ()) -> float | None:
    """FLOPs of one compiled ``agent.update`` by XLA's own cost analysis (every op, elementwise included).

    Conditional branches count as if taken (TD3's delayed actor step is counted in every update) and
    loops as one trip, so this is an upper bound for TD3-shaped agents and a lower bound for PRDC's
    search; the ratio between agents with the same convention is what :func:`main` reports.
    """
    from offreg.data.core import sample

    batch = sample(transitions, jax.random.PRNGKey(1), batch_size)
    try:
        cost = jax.jit(lambda a, b, k, c: a.update(b, k, c)).lower(agent, batch, jax.random.PRNGKey(2), context)
        cost = cost.compile()
        cost = cost.cost_analysis()
    except Exception:  # noqa: BLE001  (cost analysis is optional in XLA backends)
        return None
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


# --- timing helpers ------------------------------------------------------------------------------
def _block(tree: Any) -> None:
    jax.tree_util.tree_map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)


def _best_rate(fn, work: float, repeats: int, cpu: dict[str, Any] | None = None) -> tuple[float, list[float]]:
    """``work / seconds`` of the fastest of ``repeats`` calls of ``fn`` (after one warm-up call).

    With ``cpu`` (a dict), also records ``cpu["rate"] = work / CPU seconds`` of the call with the least
    process CPU time (all threads): on a shared, loaded machine this is steadier than wall time.
    """
    fn()
    times, cpu_times = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if cpu is not None:
        cpu["rate"], cpu["seconds"] = work / min(cpu_times), cpu_times
    return work / min(times), times


# --- offreg --------------------------------------------------------------------------------------
def _offreg_run(name: str, dataset: Any, chunk: int, warmup: int) -> dict[str, Any]:
    """One agent compiled (and trained ``warmup`` updates): its timed ``call`` and what to report."""
    spec = get_spec(name)
    if is_gradient_free(spec.agent_cls):
        raise SystemExit(f"agent {name!r} is gradient-free; it has no update to time")
    config = spec.default_config().replace(batch_size=256)
    prepared = config.prepare(dataset)
    context = dataset_context(spec.agent_cls, config, prepared)  # PRDC's neighbour index; () otherwise
    agent = spec.agent_cls.create(config, prepared, seed_keys(0)[0], context)
    run = jax.jit(scan_updates, static_argnums=3)
    state = {"agent": agent, "key": seed_keys(0)[1]}
    t0 = time.perf_counter()
    _block(run(agent, prepared.transitions, state["key"], chunk, context))
    compile_s = time.perf_counter() - t0
    for _ in range(-(-warmup // chunk)):  # train first: PRDC's search cost depends on how close pi is to the data
        agent, state["key"], _ = run(agent, prepared.transitions, state["key"], chunk, context)
    _block(agent)
    state["agent"] = agent

    def call():
        a, k, m = run(state["agent"], prepared.transitions, state["key"], chunk, context)
        _block((a, m))
        state["agent"], state["key"] = a, k

    call()  # the first timed-shape call, untimed
    out: dict[str, Any] = {"agent": name, "chunk": chunk, "compile_and_first_call_s": compile_s,
                           "warmup_updates": -(-warmup // chunk) * chunk, "config": config.to_dict()}
    out["xla_flops_per_update"] = xla_update_flops(agent, prepared.transitions, config.batch_size, context)
    if isinstance(agent, TD3Agent):
        out["flops_per_update"] = td3_update_flops(prepared.info.obs_dim, prepared.info.act_dim, config)["per_update"]
    return {"call": call, "out": out}


def bench_offreg(names: list[str], dataset: Any, chunk: int, repeats: int, warmup: int = 0) -> list[dict[str, Any]]:
    """Updates/s of each agent: ``repeats`` rounds of one ``chunk``-update call of each agent, alternating,
    so every agent is timed under the same load (``alternate.py``); each agent's fastest call counts (wall and
    CPU time), and ``call_seconds`` keeps every call for the paired ratios."""
    runs = [_offreg_run(name, dataset, chunk, warmup) for name in names]
    calls = alternate({str(i): r["call"] for i, r in enumerate(runs)}, repeats)
    times = [calls[str(i)]["seconds"] for i in range(len(runs))]
    cpu_times = [calls[str(i)]["cpu_seconds"] for i in range(len(runs))]
    results = []
    for r, t, c in zip(runs, times, cpu_times, strict=True):
        out = {**r["out"], "updates_per_s": chunk / min(t), "updates_per_cpu_s": chunk / min(c),
               "call_seconds": t, "call_cpu_seconds": c}
        if "flops_per_update" in out:
            out["gflops"] = out["flops_per_update"] * out["updates_per_s"] / 1e9
            out["gflops_per_cpu_s"] = out["flops_per_update"] * out["updates_per_cpu_s"] / 1e9
        results.append(out)
    return results


def bench_seeds(name: str, dataset: Any, seeds: int, chunk: int, repeats: int) -> dict[str, Any]:
    """Seconds per chunk of the engine's vmapped ``train_chunk`` with ``seeds`` seeds and with 1 seed."""
    spec = get_spec(name)
    config = spec.default_config().replace(batch_size=256)
    prepared = config.prepare(dataset)
    context = dataset_context(spec.agent_cls, config, prepared)
    res, res_cpu = {}, {}
    for s in (1, seeds):
        agents = create_seeds(spec.agent_cls, config, prepared, list(range(s)), context)
        state = {"a": agents, "k": jnp.stack([seed_keys(i)[1] for i in range(s)])}

        def call(state=state):
            a, k, m, ok = train_chunk(state["a"], prepared.transitions, state["k"], chunk, context)
            _block((a, m, ok))
            state["a"], state["k"] = a, k

        cpu: dict[str, Any] = {}
        rate, times = _best_rate(call, 1.0, repeats, cpu)
        res[s], res_cpu[s] = min(times), min(cpu["seconds"])
    return {"agent": name, "seeds": seeds, "chunk": chunk, "seconds_1": res[1], f"seconds_{seeds}": res[seeds],
            "ratio": res[seeds] / res[1], "cpu_seconds_1": res_cpu[1], f"cpu_seconds_{seeds}": res_cpu[seeds],
            "cpu_ratio": res_cpu[seeds] / res_cpu[1]}


# --- dense matmul rate ---------------------------------------------------------------------------
def bench_matmul(shapes: list[tuple[int, int, int]], iters: int, repeats: int) -> list[dict[str, Any]]:
    """GFLOP/s of ``iters`` jitted ``[m, k] @ [k, n]`` float32 products accumulated in one scan (one call)."""
    out = []
    for m, k, n in shapes:
        key1, key2 = jax.random.split(jax.random.PRNGKey(0))
        x = jax.random.normal(key1, (m, k), jnp.float32)
        w = jax.random.normal(key2, (k, n), jnp.float32) / np.sqrt(k)
        ws = jnp.stack([w * (1.0 + 0.01 * j) for j in range(4)])

        @jax.jit
        def chain(x, ws):
            def body(acc, i):  # the dynamic weight index keeps XLA from hoisting the product
                return acc + jnp.dot(x, ws[i % 4]), None

            return jax.lax.scan(body, jnp.zeros((x.shape[0], ws.shape[2]), jnp.float32), jnp.arange(iters))[0]

        cpu: dict[str, Any] = {}
        rate, _ = _best_rate(lambda x=x, ws=ws, chain=chain: chain(x, ws).block_until_ready(), 2.0 * m * k * n * iters,
                             repeats, cpu)
        out.append({"shape": [m, k, n], "gflops": rate / 1e9, "gflops_per_cpu_s": cpu["rate"] / 1e9})
    return out


# --- PyTorch TD3+BC as the official code ---------------------------------------------------------
def bench_torch(arrays: dict[str, np.ndarray], steps: int, threads: int | None) -> dict[str, Any]:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cpu")
    obs_dim, act_dim = arrays["observations"].shape[1], arrays["actions"].shape[1]

    class Actor(tnn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2, self.l3 = tnn.Linear(obs_dim, 256), tnn.Linear(256, 256), tnn.Linear(256, act_dim)

        def forward(self, s):
            return torch.tanh(self.l3(F.relu(self.l2(F.relu(self.l1(s))))))

    class Critic(tnn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2, self.l3 = tnn.Linear(obs_dim + act_dim, 256), tnn.Linear(256, 256), tnn.Linear(256, 1)
            self.l4, self.l5, self.l6 = tnn.Linear(obs_dim + act_dim, 256), tnn.Linear(256, 256), tnn.Linear(256, 1)

        def forward(self, s, a):
            sa = torch.cat([s, a], 1)
            q1 = self.l3(F.relu(self.l2(F.relu(self.l1(sa)))))
            q2 = self.l6(F.relu(self.l5(F.relu(self.l4(sa)))))
            return q1, q2

        def q1(self, s, a):
            sa = torch.cat([s, a], 1)
            return self.l3(F.relu(self.l2(F.relu(self.l1(sa)))))

    import copy

    actor, critic = Actor().to(device), Critic().to(device)
    actor_t, critic_t = copy.deepcopy(actor), copy.deepcopy(critic)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=3e-4)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=3e-4)
    s_all, a_all = arrays["observations"], arrays["actions"]
    s2_all, r_all = arrays["next_observations"], arrays["rewards"][:, None]
    nd_all = 1.0 - arrays["terminals"][:, None]
    rng = np.random.default_rng(0)  # the baseline samples on the host, as the official code does
    it = {"n": 0}

    def train_step():
        it["n"] += 1
        ind = rng.integers(0, len(r_all), size=256)
        s, a = torch.FloatTensor(s_all[ind]).to(device), torch.FloatTensor(a_all[ind]).to(device)
        s2, r = torch.FloatTensor(s2_all[ind]).to(device), torch.FloatTensor(r_all[ind]).to(device)
        nd = torch.FloatTensor(nd_all[ind]).to(device)
        with torch.no_grad():
            noise = (torch.randn_like(a) * 0.2).clamp(-0.5, 0.5)
            a2 = (actor_t(s2) + noise).clamp(-1.0, 1.0)
            tq1, tq2 = critic_t(s2, a2)
            y = r + nd * 0.99 * torch.min(tq1, tq2)
        q1, q2 = critic(s, a)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        if it["n"] % 2 == 0:
            pi = actor(s)
            q = critic.q1(s, pi)
            lmbda = 2.5 / q.abs().mean().detach()
            actor_loss = -lmbda * q.mean() + F.mse_loss(pi, a)
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            with torch.no_grad():
                for p, tp in zip(critic.parameters(), critic_t.parameters(), strict=True):
                    tp.data.copy_(0.005 * p.data + 0.995 * tp.data)
                for p, tp in zip(actor.parameters(), actor_t.parameters(), strict=True):
                    tp.data.copy_(0.005 * p.data + 0.995 * tp.data)

    def loop():
        for _ in range(steps):
            train_step()

    for _ in range(20):
        train_step()
    cpu: dict[str, Any] = {}
    rate, times = _best_rate(loop, steps, 2, cpu)
    return {"updates_per_s": rate, "updates_per_cpu_s": cpu["rate"], "steps": steps, "call_seconds": times,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


# --- d3rlpy TD3PlusBC ----------------------------------------------------------------------------
def bench_d3rlpy(arrays: dict[str, np.ndarray], steps: int, threads: int | None) -> dict[str, Any]:
    import d3rlpy
    import torch

    if threads:
        torch.set_num_threads(threads)
    obs = np.concatenate([arrays["observations"], arrays["next_observations"][-1:]])[:-1]
    dataset = d3rlpy.dataset.MDPDataset(obs, arrays["actions"], arrays["rewards"], arrays["terminals"],
                                        timeouts=arrays["timeouts"])
    algo = d3rlpy.algos.TD3PlusBCConfig(batch_size=256, alpha=2.5, tau=0.005, update_actor_interval=2,
                                        target_smoothing_sigma=0.2, target_smoothing_clip=0.5,
                                        actor_learning_rate=3e-4, critic_learning_rate=3e-4).create(device="cpu:0")
    algo.build_with_dataset(dataset)

    def loop():
        for _ in range(steps):
            algo.update(dataset.sample_transition_batch(256))

    for _ in range(10):
        algo.update(dataset.sample_transition_batch(256))
    cpu: dict[str, Any] = {}
    rate, times = _best_rate(loop, steps, 2, cpu)
    return {"updates_per_s": rate, "updates_per_cpu_s": cpu["rate"], "steps": steps, "call_seconds": times,
            "d3rlpy": d3rlpy.__version__,
            "torch_threads": torch.get_num_threads()}


# --- d3rlpy PRDC ---------------------------------------------------------------------------------
def bench_d3rlpy_prdc(arrays: dict[str, np.ndarray], steps: int, threads: int | None) -> dict[str, Any]:
    """d3rlpy's PRDC: its ``fit`` fits ``NearestNeighbors`` on ``[beta * s, a]`` and then runs ``update``."""
    import d3rlpy
    import torch

    if threads:
        torch.set_num_threads(threads)
    dataset = d3rlpy.dataset.MDPDataset(arrays["observations"], arrays["actions"], arrays["rewards"],
                                        arrays["terminals"], timeouts=arrays["timeouts"])
    algo = d3rlpy.algos.PRDCConfig(batch_size=256, alpha=2.5, beta=2.0, tau=0.005, update_actor_interval=2,
                                   target_smoothing_sigma=0.2, target_smoothing_clip=0.5,
                                   actor_learning_rate=3e-4, critic_learning_rate=3e-4).create(device="cpu:0")
    algo.build_with_dataset(dataset)
    t0 = time.perf_counter()
    algo._nbsr.fit(np.concatenate([2.0 * arrays["observations"], arrays["actions"]], axis=1))  # as PRDC.fit
    fit_s = time.perf_counter() - t0

    def loop():
        for _ in range(steps):
            algo.update(dataset.sample_transition_batch(256))

    for _ in range(4):
        algo.update(dataset.sample_transition_batch(256))
    rate, times = _best_rate(loop, steps, 2)
    return {"updates_per_s": rate, "steps": steps, "call_seconds": times, "d3rlpy": d3rlpy.__version__,
            "nearest_neighbors_fit_s": fit_s, "torch_threads": torch.get_num_threads()}


# --- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="td3bc", help="comma-separated registered agents (e.g. td3bc,prdc,a2pr)")
    p.add_argument("--baselines", default="torch,d3rlpy", help="comma-separated: torch, d3rlpy, or none")
    p.add_argument("--dataset", default="", help="a registered dataset instead of the synthetic one")
    p.add_argument("--rows", type=int, default=100_000, help="transitions in the synthetic dataset")
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--chunk", type=int, default=1000, help="updates per jitted scan call (offreg)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls; the fastest counts")
    p.add_argument("--torch-steps", type=int, default=500)
    p.add_argument("--d3rlpy-steps", type=int, default=200)
    p.add_argument("--seeds", type=int, default=5, help="vmapped seeds for the seed-cost ratio (0: skip)")
    p.add_argument("--seed-agents", default="", help="agents of the seed-cost ratio (default: all of --agents)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--warmup", type=int, default=0, help="updates trained before timing (PRDC: a trained policy "
                   "is nearer the data, so more searches are certified)")
    p.add_argument("--quick", action="store_true", help="small chunk and step counts (smoke test)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "throughput.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.chunk, args.repeats, args.torch_steps, args.d3rlpy_steps = 50, 1, 20, 10
    agents = [a for a in args.agents.split(",") if a]
    baselines = [b for b in args.baselines.split(",") if b and b != "none"]

    if args.dataset:
        arrays = dataset_arrays(args.dataset)
        args.rows, args.obs_dim = arrays["observations"].shape
        args.act_dim = arrays["actions"].shape[1]
    else:
        arrays = synthetic_arrays(args.rows, args.obs_dim, args.act_dim)
    dataset = offreg_dataset(arrays)
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "jax": jax.__version__, "backend": jax.default_backend(),
                    "devices": [str(d) for d in jax.devices()],
                    "load_average_at_start": os.getloadavg(), "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")},
        "data": {"dataset": args.dataset or "synthetic random walk", "rows": args.rows, "obs_dim": args.obs_dim,
                 "act_dim": args.act_dim, "batch_size": 256},
        "targets": TARGETS,
    }

    print(f"[throughput] offreg agents {agents} ...", flush=True)
    results["offreg"] = bench_offreg(agents, dataset, args.chunk, args.repeats, args.warmup)
    h = 256
    shapes = [(256, h, h), (256, args.obs_dim + args.act_dim, h), (256, h, args.act_dim), (1024, 1024, 1024)]
    print("[throughput] matmul rate ...", flush=True)
    results["matmul"] = bench_matmul(shapes, iters=200 if not args.quick else 20, repeats=max(args.repeats, 2))
    typical, typical_cpu = results["matmul"][0]["gflops"], results["matmul"][0]["gflops_per_cpu_s"]
    for r in results["offreg"]:
        if "gflops" in r:
            r["fraction_of_matmul_256"] = r["gflops"] / typical
            r["cpu_fraction_of_matmul_256"] = r["gflops_per_cpu_s"] / typical_cpu
    if args.seeds:
        print(f"[throughput] {args.seeds} vmapped seeds vs 1 ...", flush=True)
        seed_agents = [a for a in args.seed_agents.split(",") if a] or agents
        results["seeds"] = [bench_seeds(a, dataset, args.seeds, args.chunk, args.repeats) for a in seed_agents]
    for b in baselines:
        print(f"[throughput] baseline {b} ...", flush=True)
        fn = {"torch": bench_torch, "d3rlpy": bench_d3rlpy, "d3rlpy-prdc": bench_d3rlpy_prdc}[b]
        steps = args.torch_steps if b == "torch" else args.d3rlpy_steps
        with tempfile.TemporaryDirectory() as tmp:  # d3rlpy may write logs into the working directory
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                results[b] = fn(arrays, steps, args.threads or None)
            finally:
                os.chdir(cwd)
    results["load_average_at_end"] = os.getloadavg()

    # --- table
    print()
    print(f"load average at start {results['machine']['load_average_at_start'][0]:.1f}, "
          f"at end {results['load_average_at_end'][0]:.1f} (on {os.cpu_count()} CPUs)")
    print(f"{'what':<34}{'updates/s':>12}{'upd/CPU-s':>12}{'GFLOP/s':>10}{'GFLOP/CPU-s':>13}  notes")
    for r in results["offreg"]:
        g = f"{r['gflops']:.1f}" if "gflops" in r else "n/a"
        gc = f"{r['gflops_per_cpu_s']:.1f}" if "gflops" in r else "n/a"
        note = (f"{r['fraction_of_matmul_256']:.0%} (wall), {r['cpu_fraction_of_matmul_256']:.0%} (CPU time) of the "
                "256x256x256 matmul rate") if "gflops" in r else ""
        print(f"{'offreg ' + r['agent']:<34}{r['updates_per_s']:>12.0f}{r['updates_per_cpu_s']:>12.0f}{g:>10}{gc:>13}"
              f"  {note}")
    for b in baselines:
        label = "d3rlpy PRDC" if b == "d3rlpy-prdc" else b + " TD3+BC"
        cpu_rate = results[b].get("updates_per_cpu_s", float("nan"))
        print(f"{label:<34}{results[b]['updates_per_s']:>12.0f}{cpu_rate:>12.0f}")
    for m in results["matmul"]:
        print(f"{'jnp.dot ' + 'x'.join(map(str, m['shape'])):<34}{'':>24}{m['gflops']:>10.1f}"
              f"{m['gflops_per_cpu_s']:>13.1f}")
    td3 = next((r for r in results["offreg"] if r["agent"] == "td3bc"), None)
    if td3 is not None:
        for b, key in (("torch", "vs_torch"), ("d3rlpy", "vs_d3rlpy")):
            if b in results:
                results[f"speedup_{b}"] = td3["updates_per_s"] / results[b]["updates_per_s"]
                results[f"cpu_speedup_{b}"] = td3["updates_per_cpu_s"] / results[b]["updates_per_cpu_s"]
                print(f"td3bc speed-up vs {b}: {results[f'speedup_{b}']:.1f}x wall, "
                      f"{results[f'cpu_speedup_{b}']:.1f}x per CPU second (target >= {TARGETS[key]}x)")
        print(f"td3bc fraction of matmul rate: {td3['fraction_of_matmul_256']:.0%} wall, "
              f"{td3['cpu_fraction_of_matmul_256']:.0%} CPU time (target >= 70%)")
    by_name = {r["agent"]: r for r in results["offreg"]}
    for name, target in (("prdc", 1.3), ("a2pr", 3.0), ("odice", 2.0), ("bc", float("nan"))):
        if name in by_name and td3 is not None:
            ratio = td3["updates_per_s"] / by_name[name]["updates_per_s"]
            results[f"cost_{name}_vs_td3bc"] = ratio
            paired = paired_ratio(td3["call_seconds"], by_name[name]["call_seconds"])
            results[f"cost_{name}_vs_td3bc_paired"] = paired
            flop_ratio = None
            if by_name[name].get("xla_flops_per_update") and td3.get("xla_flops_per_update"):
                flop_ratio = by_name[name]["xla_flops_per_update"] / td3["xla_flops_per_update"]
                results[f"flops_{name}_vs_td3bc"] = flop_ratio
            target_text = f" (target <= {target}x)" if target == target else ""
            print(f"{name} cost per update: {ratio:.2f}x td3bc's (fastest calls; {paired:.2f}x the median of "
                  f"each round's pair){target_text}"
                  + ("" if flop_ratio is None else f"; its update has {flop_ratio:.2f}x td3bc's FLOPs (XLA count)"))
    if "prdc" in by_name and "d3rlpy-prdc" in results:
        speedup = by_name["prdc"]["updates_per_s"] / results["d3rlpy-prdc"]["updates_per_s"]
        results["speedup_prdc_vs_d3rlpy_prdc"] = speedup
        print(f"prdc speed-up vs d3rlpy PRDC: {results['speedup_prdc_vs_d3rlpy_prdc']:.1f}x (target >= 20x)")
    for s in results.get("seeds", []):
        print(f"{s['agent']}: {s['seeds']} vmapped seeds cost {s['ratio']:.2f}x one seed wall, "
              f"{s['cpu_ratio']:.2f}x CPU time (target <= 4.5x)")

    out = Path(args.out)
    atomic_write_text(out, json.dumps(results, indent=2, default=float))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
