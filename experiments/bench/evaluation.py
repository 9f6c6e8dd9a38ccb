"""Benchmark: a 10-episode evaluation, vectorized (``offreg.evaluation.evaluate``) vs sequential.

The agent is a randomly initialised TD3 actor (two hidden layers of 256, tanh output) with the
observation normalization a trained agent carries. "sequential" is the loop of PRDC's and A2PR's
``eval.py``: one environment, one episode after another, one ``act`` call per step on a batch of 1.
"vectorized" is :func:`offreg.evaluation.evaluate`: all episodes in lockstep, one batched ``act``
call per step. Both use the same jitted ``act`` and the same environments and seeds, and the
script checks that they give the same returns. ``seeds`` also times :func:`evaluate_seeds` for S
stacked agents against S calls of ``evaluate``.

Usage::

    nice -n 10 .venv/bin/python experiments/bench/evaluation.py [--env hopper] [--episodes 10]
        [--seeds 5] [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from offreg.atomic import atomic_write_text
from offreg.data.core import normalize
from offreg.envs import make_env
from offreg.evaluation import evaluate, evaluate_seeds
from offreg.networks import DeterministicActor
from offreg.provenance import versions


class RandomActorAgent(flax.struct.PyTreeNode):
    """A TD3-shaped actor with random weights; ``act`` normalizes raw observations itself."""

    params: dict
    obs_mean: jax.Array
    obs_std: jax.Array
    net: DeterministicActor = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, key: jax.Array, obs_dim: int, act_dim: int) -> RandomActorAgent:
        net = DeterministicActor((256, 256), act_dim)
        k1, k2 = jax.random.split(key)
        # ``nn.Module.init`` explicitly: the actor's ``init`` field (the init scheme) shadows the method.
        params = nn.Module.init(net, k1, jnp.zeros((1, obs_dim)))
        mean = 0.1 * jax.random.normal(k2, (obs_dim,))
        return cls(params, mean, jnp.ones(obs_dim), net)

    def act(self, observations: jax.Array) -> jax.Array:
        return self.net.apply(self.params, normalize(observations, self.obs_mean, self.obs_std))


_act = jax.jit(lambda agent, obs: agent.act(obs))


def sequential(agent, env_id: str, episodes: int, seed: int, horizon: int) -> np.ndarray:
    """One environment, episodes one after another, env reset with ``seed + i`` for episode ``i``."""
    env = make_env(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total = 0.0
        for _ in range(horizon):
            action = np.asarray(_act(agent, obs[None].astype(np.float32)))[0]
            obs, reward, terminated, truncated, _ = env.step(np.clip(action, -1.0, 1.0))
            total += float(reward)
            if terminated or truncated:
                break
        returns.append(total)
    env.close()
    return np.asarray(returns)


def best_time(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall-clock and best process CPU time (all threads) of ``repeats`` calls, and the last output.

    The CPU time is less sensitive than the wall time to other processes sharing the machine.
    """
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), out


def round_robin_step_cpu(env_id: str, num_envs: int, steps: int, repeats: int) -> float:
    """CPU seconds per ``env.step`` (zero actions) when ``num_envs`` environments are stepped in turn.

    An environment that terminates (Hopper falls) is reset; the reset is counted in the figure.

    Shows how the per-step cost grows once the environments' working set leaves the CPU caches.
    """
    envs = [make_env(env_id) for _ in range(num_envs)]
    zero = np.zeros(envs[0].action_space.shape, np.float32)

    def run() -> None:
        for i, env in enumerate(envs):
            env.reset(seed=i)
        for _ in range(steps // num_envs):
            for env in envs:
                if any(env.step(zero)[2:4]):  # terminated or truncated
                    env.reset()

    cpu, _ = best_cpu(run, repeats)
    for env in envs:
        env.close()
    return cpu / (steps // num_envs * num_envs)


def best_cpu(fn, repeats: int) -> tuple[float, object]:
    _, cpu, out = best_time(fn, repeats)
    return cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5, help="stacked agents for the evaluate_seeds timing (0: skip)")
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions; the best is reported")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    env = make_env(args.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    agent = RandomActorAgent.create(jax.random.PRNGKey(0), obs_dim, act_dim)

    # Warm up (compilation) outside the timings.
    evaluate(agent, args.env, args.episodes, seed=0, max_episode_steps=2)
    sequential(agent, args.env, 1, 0, 2)

    t_vec, c_vec, res = best_time(lambda: evaluate(agent, args.env, args.episodes, 0, args.horizon), args.repeats)
    t_seq, c_seq, seq_returns = best_time(
        lambda: sequential(agent, args.env, args.episodes, 0, args.horizon), args.repeats
    )
    np.testing.assert_allclose(res.returns, seq_returns, rtol=1e-6, atol=1e-6)
    steps = int(res.lengths.sum())
    figures = {
        "env": args.env,
        "episodes": args.episodes,
        "horizon": args.horizon,
        "env_steps": steps,
        "mean_length": float(res.lengths.mean()),
        "vectorized_s": round(t_vec, 4),
        "sequential_s": round(t_seq, 4),
        "speedup": round(t_seq / t_vec, 2),
        "vectorized_cpu_s": round(c_vec, 4),
        "sequential_cpu_s": round(c_seq, 4),
        "cpu_speedup": round(c_seq / c_vec, 2),
        "vectorized_steps_per_s": round(steps / t_vec),
        "sequential_steps_per_s": round(steps / t_seq),
    }
    # Components: building one environment, and one act call on a batch of 1 and of E observations.
    c_make, _ = best_cpu(lambda: [make_env(args.env).close() for _ in range(10)], args.repeats)
    obs1, obs_e = np.zeros((1, obs_dim), np.float32), np.zeros((args.episodes, obs_dim), np.float32)
    c_act1, _ = best_cpu(lambda: [np.asarray(_act(agent, obs1)) for _ in range(200)], args.repeats)
    c_act_e, _ = best_cpu(lambda: [np.asarray(_act(agent, obs_e)) for _ in range(200)], args.repeats)
    step_cpu_us = {}
    for k in sorted({1, args.episodes, max(args.seeds, 1) * args.episodes}):
        step_cpu_us[f"{k}_envs"] = round(round_robin_step_cpu(args.env, k, 5000, args.repeats) * 1e6, 1)
    figures.update(
        step_cpu_us_round_robin=step_cpu_us,
        make_env_cpu_ms=round(c_make / 10 * 1e3, 2),
        act_batch1_cpu_us=round(c_act1 / 200 * 1e6, 1),
        act_batch_episodes_cpu_us=round(c_act_e / 200 * 1e6, 1),
    )
    if args.seeds:
        keys = jax.random.split(jax.random.PRNGKey(1), args.seeds)
        agents = [RandomActorAgent.create(k, obs_dim, act_dim) for k in keys]
        stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *agents)
        evaluate_seeds(stacked, args.env, args.episodes, 0, max_episode_steps=2)
        t_stk, c_stk, stk = best_time(
            lambda: evaluate_seeds(stacked, args.env, args.episodes, 0, args.horizon), args.repeats
        )
        t_sep, c_sep, sep = best_time(
            lambda: [evaluate(a, args.env, args.episodes, 0, args.horizon) for a in agents], args.repeats
        )
        for a, b in zip(stk, sep, strict=True):
            np.testing.assert_allclose(a.returns, b.returns, rtol=1e-6, atol=1e-6)
        figures.update(
            seeds=args.seeds,
            seeds_env_steps=int(sum(r.lengths.sum() for r in stk)),
            evaluate_seeds_s=round(t_stk, 4),
            separate_evaluate_s=round(t_sep, 4),
            seeds_speedup=round(t_sep / t_stk, 2),
            evaluate_seeds_cpu_s=round(c_stk, 4),
            separate_evaluate_cpu_s=round(c_sep, 4),
            seeds_cpu_speedup=round(c_sep / c_stk, 2),
        )
    figures["versions"] = versions(("gymnasium", "mujoco", "jax"))
    figures["cpu"] = platform.processor() or platform.machine()
    figures["cpus"] = os.cpu_count()
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)  # other processes share the CPUs
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
