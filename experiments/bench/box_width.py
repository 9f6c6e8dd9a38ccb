"""Why PRDC's index keeps wide boxes in chunks: the time of the search's box bound (one gather of four
children's boxes per (query, node) pair and the sum over coordinates, `offreg.agents.neighbours._lower_bound`'s
kernel) against the number of coordinates, for one array and for chunks of at most 16.

Usage::

    python experiments/bench/box_width.py --out experiments/bench/results/box_width.json

Each figure is the fastest of ``--repeats`` calls on ``--pairs`` pairs (sorted random nodes of a
32,767-node tree, as a search step sees them).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents.neighbour_scan import sum_squares, windows
from offreg.agents.neighbour_tree import BOX_CHUNK, box_chunks


def bound_ms(boxes: np.ndarray, pairs: int, repeats: int, seed: int = 0) -> float:
    """Milliseconds of the bound of ``pairs`` (query, node) pairs over ``boxes`` (``[C, nodes, W]``)."""
    rng = np.random.default_rng(seed)
    c, nodes, w = boxes.shape
    lo = jnp.asarray(boxes)
    hi = lo + 0.1
    first = jnp.asarray(4 * np.sort(rng.integers(0, (nodes - 3) // 4, pairs)).astype(np.int32) + 3)
    q = jnp.asarray(rng.normal(size=(pairs, c * w)).astype(np.float32))

    @jax.jit
    def bound(lo, hi, first, q):
        total = 0.0
        for i in range(c):
            part = q[:, None, i * w:(i + 1) * w]
            gap = jnp.maximum(jnp.maximum(windows(lo[i], first, 4) - part, part - windows(hi[i], first, 4)), 0.0)
            total = total + sum_squares(gap)
        return total

    jax.block_until_ready(bound(lo, hi, first, q))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(bound(lo, hi, first, q))
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="11,14,16,17,20,23,32")
    p.add_argument("--pairs", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(1)
    rows = []
    for d in (int(x) for x in args.widths.split(",")):
        box = rng.normal(size=(32767, d)).astype(np.float32)
        one = bound_ms(box[None], args.pairs, args.repeats)
        chunked = bound_ms(box_chunks(box), args.pairs, args.repeats)
        rows.append({"coordinates": d, "one_array_ms": one, "chunks": -(-d // BOX_CHUNK), "chunked_ms": chunked,
                     "one_array_ns_per_coordinate": 1e6 * one / (4 * args.pairs * d)})
        print(f"{d:3d} coordinates: one array {one:.3f} ms ({rows[-1]['one_array_ns_per_coordinate']:.2f} ns per "
              f"coordinate), in {rows[-1]['chunks']} chunk(s) {chunked:.3f} ms")
    res = {"command": "box_width.py", "pairs": args.pairs, "repeats": args.repeats, "jax": jax.__version__,
           "backend": jax.default_backend(), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
