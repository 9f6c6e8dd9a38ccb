"""Cost of one O-DICE update against one TD3+BC update on the CPU (and S-DICE / T-DICE for scale).

Each agent runs ``K`` updates per jitted ``lax.scan`` (the engine's inner loop,
``offreg.engine.scan_updates``) on hopper-sized synthetic data (obs 11, act 3, batch 256) with
its default config. The calls of all agents are interleaved, ``--repeats`` times, and the median
time per update is reported, with each agent's ratio to TD3+BC.

Command (figures in docs/odice.md)::

    nice -n 10 python experiments/bench/odice_update.py --steps 200 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from offreg.agents.names import get_spec
from offreg.data import DatasetInfo, from_arrays
from offreg.engine import scan_updates

AGENTS = {
    "td3bc": ("td3bc", {}),
    "odice (orthogonal)": ("odice", {"update_rule": "orthogonal"}),
    "odice (semi)": ("odice", {"update_rule": "semi"}),
    "odice (true)": ("odice", {"update_rule": "true"}),
    # the same value learning with a TD3+BC-sized policy (2 x 256 instead of the paper's 2 x 1024)
    "odice (orthogonal, 256 policy)": ("odice", {"update_rule": "orthogonal", "policy_hidden_dims": (256, 256)}),
    "odice (semi, 256 policy)": ("odice", {"update_rule": "semi", "policy_hidden_dims": (256, 256)}),
}


def synthetic(n: int = 100_000, obs_dim: int = 11, act_dim: int = 3):
    """Hopper-sized random transitions (the cost of an update does not depend on the values)."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n, obs_dim))
    info = DatasetInfo("bench", "file", None, obs_dim, act_dim, n)
    return from_arrays(obs, rng.uniform(-1, 1, (n, act_dim)), rng.normal(size=n), obs + 0.01, np.zeros(n), info)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="updates per jitted call")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    ds = synthetic()
    fns, states = {}, {}
    for label, (name, overrides) in AGENTS.items():
        spec = get_spec(name)
        config = spec.default_config().replace(**overrides)
        prepared = config.prepare(ds)
        states[label] = (spec.agent_cls.create(config, prepared, jax.random.PRNGKey(0)), prepared.transitions)
        fns[label] = jax.jit(scan_updates, static_argnums=3)
        agent, trans = states[label]
        jax.block_until_ready(fns[label](agent, trans, jax.random.PRNGKey(1), args.steps))  # compile
    times: dict[str, list[float]] = {k: [] for k in AGENTS}
    for r in range(args.repeats):
        for label in AGENTS:
            agent, trans = states[label]
            t0 = time.perf_counter()
            jax.block_until_ready(fns[label](agent, trans, jax.random.PRNGKey(2 + r), args.steps))
            times[label].append((time.perf_counter() - t0) / args.steps)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    base = med["td3bc"]
    print(f"{'agent':32s} {'ms/update':>10s} {'x TD3+BC':>9s}")
    for k, v in med.items():
        print(f"{k:32s} {v:10.3f} {v / base:9.2f}")
    print(json.dumps({"ms_per_update": med, "devices": str(jax.devices()), "steps": args.steps,
                      "repeats": args.repeats}))
    return med


if __name__ == "__main__":
    main()
