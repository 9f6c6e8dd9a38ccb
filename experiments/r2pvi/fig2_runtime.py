"""Fig. 2 of R2PVI: training time on the American put option against the feature dimension d and the
number of trajectories N, for PEVI, R2PVI (TV, KL, chi-square), DRPVI and DRVI-L, measured in one run.

Each value is the median time of one fit (the whole backward induction over H = 20 steps,
``offreg.agents.r2pvi.backward_induction``, float64, jitted, after compilation) over ``--repeats``
fits; methods are timed interleaved so that they share the machine's load. The figure shows the
**CPU time of the process** (``time.process_time``) with XLA limited to one thread, which a
shared machine's load inflates less than wall-clock time; the JSON also records every repeat, the
minimum and the wall-clock times. Compilation time is reported separately.

    python experiments/r2pvi/fig2_runtime.py
"""

from __future__ import annotations

import argparse
import json
import os
import time

# one XLA thread: CPU time then measures the work, not idle spinning of a thread pool on a shared machine
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import RESULTS, coefs, option_model, option_step_data, save_figure, write_json  # noqa: E402

from offreg.agents import r2pvi as R  # noqa: E402
from offreg.envs import american_put  # noqa: E402

METHODS = {  # method -> (bonus, coefficient keyword)
    "pevi": ("elliptical", {}),
    "r2pvi-tv": ("code", {"lam": 1.0}),
    "r2pvi-kl": ("code", {"lam": 1.0}),
    "r2pvi-chi2": ("code", {"lam": 1.0}),
    "drpvi": ("code", {"rho": 0.1}),
    "drvi-l": ("code", {"rho": 0.1}),
}


def time_setting(dim: int, n: int, repeats: int) -> dict:
    model = option_model(dim)
    sd = option_step_data(model, american_put.collect(jax.random.PRNGKey(0), n, american_put.initial_price(0)))
    sd = jax.block_until_ready(sd)
    theta = jnp.asarray(model.theta)
    out = {}
    fns = {}
    for m, (bonus, kw) in METHODS.items():
        c = coefs(0.1, 1.0, horizon=20, dim=dim, **kw)
        fns[m] = (lambda c=c, m=m, bonus=bonus: jax.block_until_ready(
            R.backward_induction(sd, theta, c, method=m, bonus=bonus)))
        t0 = time.perf_counter()
        fns[m]()
        out[m] = {"compile_and_first_run": time.perf_counter() - t0, "runs": []}
        out[m]["cpu_runs"] = []
    for _ in range(repeats):
        for m, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            out[m]["cpu_runs"].append(time.process_time() - c0)
            out[m]["runs"].append(time.perf_counter() - t0)
    for m in out:
        out[m]["median_wall"] = float(np.median(out[m]["runs"]))
        out[m]["median"] = float(np.median(out[m]["cpu_runs"]))
        out[m]["min"] = float(np.min(out[m]["cpu_runs"]))
    return out


def plot(payload: dict, stat: str = "median") -> None:
    """Draw the figure from the results (``stat``: ``median`` or ``min`` CPU time over the repeats)."""
    by_d, by_n = payload["by_d"], payload["by_n"]
    dims, ns = [int(x) for x in by_d], [int(x) for x in by_n]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, table, xs, label in ((axes[0], by_d, dims, f"feature dimension d (N={ns[0]})"),
                                 (axes[1], by_n, ns, f"trajectories N (d={dims[0]})")):
        for m in METHODS:
            ax.plot(xs, [table[str(x)][m][stat] for x in xs], marker="o", ms=3, label=m)
        ax.set_xlabel(label)
        ax.set_ylabel(f"CPU seconds per fit ({stat})")
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("Training time, American put option (H=20), offreg JAX float64 on CPU")
    save_figure(fig, "fig2_runtime")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[30, 60, 120])
    ap.add_argument("--ns", type=int, nargs="+", default=[1000, 5000, 10000])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--replot", action="store_true", help="redraw the figure from the saved JSON only")
    args = ap.parse_args()
    if args.replot:
        plot(json.loads((RESULTS / "fig2_runtime.json").read_text()))
        return
    with jax.enable_x64(True):
        by_d = {d: time_setting(d, args.ns[0], args.repeats) for d in args.dims}
        by_n = {n: time_setting(args.dims[0], n, args.repeats) for n in args.ns}
    payload = {"settings": {"H": 20, "beta": 0.1, "gamma": 1.0, "repeats": args.repeats,
                            "methods": {m: {"bonus": b, **kw} for m, (b, kw) in METHODS.items()}},
               "by_d": {str(k): v for k, v in by_d.items()}, "by_n": {str(k): v for k, v in by_n.items()}}
    path = write_json("fig2_runtime", payload)
    plot(json.loads(path.read_text()))
    for name, table in (("d", by_d), ("N", by_n)):
        for x, row in table.items():
            print(f"{name}={x:6d} CPU", "  ".join(f"{m}: {row[m]['median'] * 1e3:8.2f} ms" for m in METHODS))
    print("wrote", path)


if __name__ == "__main__":
    main()
