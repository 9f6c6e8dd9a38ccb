"""Timing shared by the benchmarks in this folder: several agents' calls alternated, so that every agent
is timed under the same machine load, and their cost ratio taken round by round.

On a shared 2-core machine the speed moves between calls (here by up to a third, in phases that last
seconds), so the fastest call of each agent can come from different phases. ``paired_ratio`` divides
each round's two calls, made back to back, and takes the median over the rounds; the scripts report
it beside the ratio of the fastest calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def alternate(calls: dict[str, Callable[[], Any]], repeats: int, long_call_s: float | None = None
              ) -> dict[str, dict[str, list]]:
    """``repeats`` rounds of one call of each of ``calls`` (in their order): per name, the wall
    ``seconds`` and ``cpu_seconds`` of each call and what it returned (``results``). Stops after a
    round in which a call took longer than ``long_call_s``."""
    out: dict[str, dict[str, list]] = {name: {"seconds": [], "cpu_seconds": [], "results": []} for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0, c0 = time.perf_counter(), time.process_time()
            result = call()
            out[name]["seconds"].append(time.perf_counter() - t0)
            out[name]["cpu_seconds"].append(time.process_time() - c0)
            out[name]["results"].append(result)
        if long_call_s is not None and max(rec["seconds"][-1] for rec in out.values()) > long_call_s:
            break
    return out


def paired_ratio(base: list[float], other: list[float]) -> float:
    """The median over rounds of ``other``'s call time over ``base``'s in the same round."""
    return statistics.median(o / b for b, o in zip(base, other, strict=True))
