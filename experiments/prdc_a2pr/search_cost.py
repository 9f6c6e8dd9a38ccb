"""PRDC's per-update cost relative to TD3+BC's as training proceeds, on a real dataset.

The exact neighbour search visits the KD-tree leaves within a query's distance of its own row, so
its cost depends on how far ``pi(s)`` is from the data: largest at initialization, smaller once the
dataset constraint has pulled the policy toward the data. This script trains PRDC and TD3+BC side by side (same dataset,
batch 256, the engine's ``scan_updates``) and, every ``--every`` updates, times ``--chunk``
updates of each (fastest of ``--repeats`` calls) and records PRDC's leaves per query and fallback
work.

Usage::

    nice -n 10 .venv/bin/python experiments/prdc_a2pr/search_cost.py --dataset offreg/hopper-medium-v0 --steps 4000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import offreg
from offreg.agents.names import get_spec
from offreg.api import resolve_config
from offreg.atomic import atomic_write_text
from offreg.engine import scan_updates


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="offreg/hopper-medium-v0")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--every", type=int, default=2000)
    p.add_argument("--chunk", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="PRDC config field, e.g. search_capacity=4096 (repeatable)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if any("=" not in kv for kv in args.set):
        p.error("--set takes KEY=VALUE, e.g. --set search_capacity=4096")
    prdc_overrides = dict(kv.split("=", 1) for kv in args.set)
    dataset = offreg.load_dataset(args.dataset)
    run = jax.jit(scan_updates, static_argnums=3)
    state = {}
    for name in ("td3bc", "prdc"):
        cfg = resolve_config(name, dataset, prdc_overrides if name == "prdc" else None)
        prepared = cfg.prepare(dataset)
        t0 = time.perf_counter()
        agent = get_spec(name).agent_cls.create(cfg, prepared, jax.random.PRNGKey(0))
        create_s = time.perf_counter() - t0
        state[name] = {"agent": agent, "key": jax.random.PRNGKey(1), "data": prepared.transitions, "create_s": create_s}
    rows = []
    for step in range(0, args.steps + 1, args.every):
        row: dict = {"step": step}
        for name, st in state.items():
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                a, k, m = run(st["agent"], st["data"], st["key"], args.chunk)
                jax.block_until_ready(a)
                times.append(time.perf_counter() - t0)
            row[f"{name}_ms_per_update"] = 1e3 * min(times[1:] or times) / args.chunk  # first call may compile
            if name == "prdc":
                for key in ("certified_fraction", "fallback_chunks", "leaves_per_query", "dc_loss", "nn_distance"):
                    row[key] = float(jnp.mean(m[key]))
        row["prdc_cost_vs_td3bc"] = row["prdc_ms_per_update"] / row["td3bc_ms_per_update"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        if step < args.steps:  # train both to the next checkpoint (not timed)
            for st in state.values():
                st["agent"], st["key"], _ = run(st["agent"], st["data"], st["key"], args.every)
    res = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
           "dataset": args.dataset, "prdc_overrides": prdc_overrides,
           "num_transitions": int(dataset.info.num_transitions),
           "prdc_create_s": state["prdc"]["create_s"], "td3bc_create_s": state["td3bc"]["create_s"],
           "load_average": os.getloadavg(), "rows": rows}
    name = args.dataset.replace("/", "_")
    out = Path(args.out or Path(__file__).parent / "results" / f"search_cost_{name}.json")
    atomic_write_text(out, json.dumps(res, indent=2))
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
