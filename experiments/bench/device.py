"""Accelerator benchmark: offreg's update rates on whatever device JAX finds, as one JSON file.

Meant for a GPU machine without network (``experiments/bench/device.sh`` calls it with a time limit):
it uses the JAX installed there and only what the repository brings, and makes its own data with
:func:`scale.write_scaled` from the bundled ``offreg/hopper-medium-replay-v0`` (unpacked from the
replay buffer shipped in ``offreg/bundled``, so no simulator runs), tiled to ``--rows`` rows with
``N(0, 0.01)`` noise. Every rate is :func:`scale.update_rate`: the engine's ``train_chunk`` with
``--steps`` updates per call, batch 256, timed after a first call that compiles.

Measured, in this order (the JSON is rewritten after each part, so a run cut short by its time limit
still leaves what it finished, with ``"complete": false``):

- ``td3bc``: updates/s of one seed and ``projected_1m_updates_s = 1e6 / updates_per_s``;
- ``seeds``: TD3+BC with ``--seeds`` (1, 5 and 20) vmapped seeds: seconds per call, updates/s per seed
  and in total (``seed_updates_per_s``);
- ``prdc``: PRDC's dataset context (the neighbour index) built on this device over all ``--rows``
  rows (``index_build_s``), then its updates/s, ``certified_fraction`` and cost against TD3+BC;
- ``a2pr``, ``odice``: updates/s;
- ``jax`` version, ``device`` kind and platform, ``wall_s`` of the whole run.

``--small`` is the same at toy sizes (a few hundred rows, a few updates, seeds 1 and 2) for the CPU
test that keeps this script working (``tests/test_bench_device.py``).

Usage::

    bash experiments/bench/device.sh                      # on the GPU machine: writes $OUT/device.json
    python experiments/bench/device.py --small --out /tmp/device.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (the benchmark beside this file)

BASE = "offreg/hopper-medium-replay-v0"
AGENTS = ("a2pr", "odice")


def _write(res: dict[str, Any], out: Path, t0: float) -> None:
    from offreg.atomic import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    res["wall_s"] = time.perf_counter() - t0
    atomic_write_text(out, json.dumps(res, indent=2) + "\n")


def _rate(name: str, path: str, steps: int, repeats: int, seeds: int = 1) -> dict[str, Any]:
    spec, config, prepared = scale.prepared_for(name, path)
    context, context_s = scale.timed_context(spec, config, prepared)
    r = scale.update_rate(spec, config, prepared, context, steps, repeats, seeds)
    r.pop("agents")
    r["context_s"] = context_s
    return r


def run(out: Path, rows: int, steps: int, repeats: int, seeds: list[int], base: str) -> dict[str, Any]:
    """Every measurement, rewriting ``out`` after each; returns the final dict."""
    import jax

    t0, dev = time.perf_counter(), jax.devices()[0]
    res: dict[str, Any] = {
        "complete": False,
        "command": " ".join(["experiments/bench/device.py", *sys.argv[1:]]),
        "jax": jax.__version__, "device": getattr(dev, "device_kind", str(dev)), "platform": dev.platform,
        "device_count": jax.device_count(), "host": platform.node(), "cpus": os.cpu_count(),
        "rows": rows, "steps_per_call": steps, "base": base,
    }
    with tempfile.TemporaryDirectory(prefix="offreg-device-") as tmp:
        path = str(Path(tmp) / f"hopper-scaled-{rows}.hdf5")
        res["file"] = scale.write_scaled(path, rows, scale.base_arrays(base), name=base)
        _write(res, out, t0)
        td3 = _rate("td3bc", path, steps, repeats)
        td3["projected_1m_updates_s"] = 1e6 / td3["updates_per_s"]
        res["td3bc"] = td3
        _write(res, out, t0)
        res["seeds"] = {}
        for s in seeds:
            r = _rate("td3bc", path, steps, repeats, seeds=s)
            r["seed_updates_per_s"] = s * r["updates_per_s"]
            res["seeds"][str(s)] = r
            _write(res, out, t0)
        prdc = _rate("prdc", path, steps, repeats)
        prdc["index_build_s"] = prdc.pop("context_s")
        prdc["cost_vs_td3bc"] = td3["updates_per_s"] / prdc["updates_per_s"]
        res["prdc"] = prdc
        _write(res, out, t0)
        for name in AGENTS:
            res[name] = _rate(name, path, steps, repeats)
            _write(res, out, t0)
    res["complete"] = True
    _write(res, out, t0)
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="toy sizes for a CPU check: 400 rows, 3 updates per call")
    p.add_argument("--rows", type=int, default=None, help="rows of the generated file (default 1,000,000)")
    p.add_argument("--steps", type=int, default=None, help="updates per timed call (default 1000)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per rate (default 3)")
    p.add_argument("--seeds", default=None, help="vmapped seed counts (default 1,5,20)")
    p.add_argument("--base", default=BASE, help="bundled dataset to tile")
    default_out = Path(os.environ["OUT"]) / "device.json" if os.environ.get("OUT") else \
        scale.ROOT / "experiments" / "bench" / "results" / "device.json"
    p.add_argument("--out", default=str(default_out), help="the JSON to write (default $OUT/device.json)")
    args = p.parse_args(argv)
    small = {"rows": 400, "steps": 3, "repeats": 1, "seeds": "1,2"}
    full = {"rows": 1_000_000, "steps": 1000, "repeats": 3, "seeds": "1,5,20"}
    d = small if args.small else full
    pick = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in d.items()}
    res = run(Path(args.out), pick["rows"], pick["steps"], pick["repeats"],
              [int(s) for s in pick["seeds"].split(",")], args.base)
    print(f"{res['device']} ({res['platform']}), jax {res['jax']}: TD3+BC {res['td3bc']['updates_per_s']:.0f} "
          f"updates/s (1M updates in {res['td3bc']['projected_1m_updates_s'] / 60:.1f} min), PRDC "
          f"{res['prdc']['updates_per_s']:.0f}/s after a {res['prdc']['index_build_s']:.1f} s index build; "
          f"wrote {args.out} in {res['wall_s']:.0f} s")
    return res


if __name__ == "__main__":
    main()
