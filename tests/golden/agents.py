"""The golden numbers of every agent: what the structure of the code must never change.

For each agent (bc, td3bc, prdc, a2pr, odice and every linear value-iteration agent) this trains
two vmapped seeds for 200 updates through :func:`offreg.train` on a bundled dataset (the linear
agents: fit on their environment's dataset) and records a hash of every group of state (each
network's parameters, its target, its optimizer state, the normalization statistics, the fitted
weights) and of every logged metric. ``tests/test_golden.py`` recomputes them.

Recording (only when the pinned versions in ``constraints.txt`` change, never to make a test pass)::

    python tests/golden/agents.py --record

The hashes are of the exact bytes: on the machine and versions recorded beside them they must be
equal bit for bit. Elsewhere (another CPU, where XLA may choose other kernels) the test compares the
recorded float64 statistics of each group to a relative tolerance instead, and says so.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import jax
import numpy as np

GOLDEN_FILE = Path(__file__).with_name("agents.json")
STEPS, LOG_EVERY, SEEDS = 200, 50, 2
DATASET = "offreg/hopper-medium-replay-v0"
NEURAL = ("bc", "td3bc", "prdc", "a2pr", "odice")
LINEAR = {"r2pvi-tv": "linear-mdp", "r2pvi-kl": "linear-mdp", "r2pvi-chi2": "american-put", "pevi": "linear-mdp",
          "drpvi": "linear-mdp", "drvi-l": "american-put"}
PINNED = ("jax", "jaxlib", "flax", "optax", "numpy")

# State that is not the agent's result: the last actor metrics repeat the metrics.
EXCLUDED = ("last_actor_metrics",)
# Metrics that are not the agent's result either: how PRDC's exact search found its answer (which path
# answered, how much it visited). They change with the search's implementation; the answer itself is
# in ``dc_loss``, ``nn_distance`` and every parameter, which stay bit for bit.
SEARCH_DIAGNOSTICS = ("certified_fraction", "fallback_chunks", "fallback_rows", "leaves_per_query")
# The distance to the neighbour found is a float32 sum of squares whose summation order XLA picks for
# the search's array shapes: it is compared to float32 rounding (relative 1e-6), not bit for bit.
ROUNDED = ("nn_distance",)
# The layout the hashes were recorded in (offreg 0.1), from today's: the regularizer's sweepable
# coefficients were then kept in its state (A2PR: after the networks; PRDC: with the neighbour index,
# a function of the dataset that was never hashed) instead of in ``coefs`` beside alpha and tau.
REGULARIZER_COEFS = {"prdc": ("beta",), "a2pr": ("mask", "vae_weight")}
HASHED_WITH_REG_STATE = {"a2pr"}
# Each network's parameters, optimizer state and target were then separate fields ``<net>_params``,
# ``<net>_opt_state`` and ``target_<net>_params``; today they are one ``TrainState`` field ``<net>``.
# BC's optimizer state was then called ``opt_state``.
RENAMED = {"bc": {"actor_opt_state": "opt_state"}}


def _fields(name: str, agent):
    """``(group name, value)`` of each pytree field, a ``TrainState`` split into its recorded groups."""
    import dataclasses

    from offreg.networks import TrainState

    renamed = RENAMED.get(name, {})
    for f in dataclasses.fields(agent):
        if not f.metadata.get("pytree_node", True) or f.name in EXCLUDED:
            continue
        value = getattr(agent, f.name)
        if isinstance(value, TrainState):
            for group, part in ((f"{f.name}_params", value.params), (f"target_{f.name}_params", value.target_params),
                                (f"{f.name}_opt_state", value.opt_state)):
                yield renamed.get(group, group), part
        else:
            yield f.name, value


def groups(name: str, agent) -> dict[str, list[np.ndarray]]:
    """The agent's state as named groups of arrays, in the layout the golden hashes were recorded in.

    Each pytree field of the agent is one group (its leaves in ``tree_leaves`` order), mapped back to
    the recorded layout by ``REGULARIZER_COEFS`` and ``RENAMED`` (a ``TrainState`` field is three groups).
    """
    out = {}
    for group, value in _fields(name, agent):
        if group == "coefs" and name in REGULARIZER_COEFS:
            moved = REGULARIZER_COEFS[name]
            value = {k: v for k, v in value.items() if k not in moved}
            if name in HASHED_WITH_REG_STATE:
                out["reg_state"] = out.get("reg_state", []) + [np.asarray(agent.coefs[k]) for k in moved]
        leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(value)]
        if leaves:
            out[group] = leaves + out.get(group, [])
    return out


def _hash(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def _stats(arrays: list[np.ndarray]) -> list[float]:
    flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)
    return [float(flat.sum()), float(np.abs(flat).sum()), float(np.sqrt((flat**2).sum()))]


def compute(name: str, data_dir: str | None = None) -> dict:
    """Train (or fit) ``name`` as described in the module docstring; its hashes, statistics and metrics."""
    import offreg

    dataset = f"offreg/{LINEAR[name]}-v0" if name in LINEAR else DATASET
    result = offreg.train(name, dataset, steps=STEPS, seeds=SEEDS, eval_every=0, log_every=LOG_EVERY,
                          progress=False)
    state = groups(name, result.agents)
    metrics = {}
    for rec in result.records:
        if rec["kind"] == "train":
            for k, v in rec.items():
                if k not in ("step", "seed", "kind", "updates_per_s", *SEARCH_DIAGNOSTICS):
                    metrics.setdefault(k, []).append([rec["step"], rec["seed"], v])
    return {
        "dataset": dataset,
        "step": result.step,
        "state": {k: {"hash": _hash(v), "stats": _stats(v)} for k, v in sorted(state.items())},
        "metrics": {k: {"hash": _hash([np.asarray(v, np.float64)]), "values": v} for k, v in sorted(metrics.items())},
    }


def machine() -> dict:
    """What decides the bits besides the code: pinned library versions, the CPU and its features."""
    from offreg.provenance import package_versions

    cpu, flags = platform.processor(), ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    simd = sorted(f for f in flags.split() if f.startswith(("avx", "sse4", "fma", "amx")))
    return {"versions": package_versions(PINNED), "cpu": cpu, "simd": simd,
            "backend": jax.default_backend()}


def record() -> None:
    from offreg.atomic import atomic_write_text

    doc = {"machine": machine(), "steps": STEPS, "log_every": LOG_EVERY, "seeds": SEEDS,
           "agents": {name: compute(name) for name in (*NEURAL, *LINEAR)}}
    atomic_write_text(GOLDEN_FILE, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN_FILE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/golden/agents.py --record")
    record()
