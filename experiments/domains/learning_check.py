"""Learning check on generated Adroit data: does BC recover a scripted door controller's return?

The data policy is a linear state-feedback controller in offreg's ``door`` environment (Gymnasium-Robotics'
``AdroitHandDoor-v1`` with D4RL's reward, :mod:`offreg.envs.adroit`): it drives the four arm joints
(``ARTz, ARRx, ARRy, ARRz``) toward the door handle: ``q_target = A handle + c + A (handle - palm)``,
the handle's joint-space position plus a proportional correction of the remaining palm-to-handle
error, where ``q = A p + c`` is a linear inverse kinematics of the grasp site, fitted by least squares
to its position ``p`` at 2,000 arm configurations drawn uniformly from 60% of the arm's control range
(numpy seed 0, forward kinematics only). The fingers and wrist are held at rest (joint target 0). As
an action in ``[-1, 1]`` this is ``a = clip(obs W + b, -1, 1)`` with ``W`` nonzero only on the
observation's palm and handle positions (entries 29:35). It reaches toward the handle but does not
open the door, so it earns D4RL's approach term only: it is clearly better than random in return
but only a fraction of a D4RL normalized point (the door bonuses are what the expert earns).

The dataset: ``--episodes`` episodes (200 steps each) of that controller with Gaussian action noise
(std 0.1, numpy seed 1, clipped to ``[-1, 1]``), written by
:func:`offreg.data.generate.adroit.adroit_file` (reset seeds ``derived_seed(0, k)``).

Pass criterion, fixed before the run:

    BC (offreg's defaults: 256-256 actor, batch 256, lr 3e-4) trained ``--steps`` 5,000 steps on 50
    episodes (10,000 rows) of the noisy controller, 2 seeds (0 and 1), recovers at least 80% of the
    noise-free controller's return gap above the uniform random policy, for each seed:
    ``R_bc - R_random >= 0.8 (R_data - R_random)``, where each R is the mean return over the same 20
    evaluation episodes (reset seeds 1000..1019) in offreg's ``door``. The check is void (fails) unless
    the controller beats random by more than 3 standard errors of the difference of the two means.

The ratio is the same on D4RL's normalized scale (an affine map of the return), which the JSON reports
too. Usage (about 75 s on two shared cores)::

    python experiments/domains/learning_check.py --steps 5000 --episodes 50 \\
        --out experiments/domains/results/learning_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import mujoco
import numpy as np

import offreg
from offreg.atomic import atomic_write_text
from offreg.data.generate.adroit import adroit_file
from offreg.envs import make_env
from offreg.evaluation import evaluate
from offreg.provenance import package_versions, simulator_versions, versions

TASK, EVAL_SEED, EVAL_EPISODES, SEEDS, NOISE, FRACTION = "door", 1000, 20, 2, 0.1, 0.8
ARM = 4  # ARTz, ARRx, ARRy, ARRz: the first four actuators and joints
PALM, HANDLE = slice(29, 32), slice(32, 35)  # door observation: palm (S_grasp) and handle (S_handle) positions


def reach_controller(samples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(W [39, 28], b [28])`` of the door controller ``a = clip(obs W + b, -1, 1)`` (see the module docstring)."""
    env = make_env(TASK)
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    grasp = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "S_grasp")
    rng = np.random.default_rng(seed)
    qs, ps = [], []
    for _ in range(samples):
        q = rng.uniform(0.6 * lo[:ARM], 0.6 * hi[:ARM])
        data.qpos[:] = 0.0
        data.qpos[:ARM] = q
        mujoco.mj_kinematics(model, data)
        qs.append(q)
        ps.append(data.site_xpos[grasp].copy())
    env.close()
    coef, *_ = np.linalg.lstsq(np.c_[np.array(ps), np.ones(samples)], np.array(qs), rcond=None)
    a_map, c = coef[:3].T, coef[3]  # q = a_map p + c, a_map [4, 3]
    scaled = (a_map / half[:ARM, None]).T  # [3, 4]: position -> action units
    w = np.zeros((39, model.nu))
    w[HANDLE, :ARM] = 2.0 * scaled  # q_target = A (2 handle - palm) + c
    w[PALM, :ARM] = -scaled
    b = -mid / half  # joint target 0 for every actuator ...
    b[:ARM] = (c - mid[:ARM]) / half[:ARM]  # ... but the arm's, which follow the handle
    return w, b


class Linear:
    """``a = clip(obs W + b + noise, -1, 1)`` with Gaussian ``noise`` of std ``noise`` (numpy, seeded)."""

    def __init__(self, w: np.ndarray, b: np.ndarray, noise: float = 0.0, seed: int = 1):
        self.w, self.b, self.noise, self.rng = w, b, noise, np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        a = np.asarray(obs, np.float64) @ self.w + self.b
        if self.noise:
            a = a + self.rng.normal(0.0, self.noise, a.shape)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    act = __call__  # the evaluation's agent interface

    def __str__(self) -> str:
        return f"linear door reach controller (experiments/domains/learning_check.py), Gaussian noise std {self.noise}"


class Uniform:
    """Uniform random actions in ``[-1, 1]`` (numpy, seeded)."""

    def __init__(self, act_dim: int, seed: int = 2):
        self.act_dim, self.rng = act_dim, np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (obs.shape[0], self.act_dim)).astype(np.float32)


def _summary(res: Any) -> dict[str, Any]:
    r = np.asarray(res.returns, np.float64)
    return {"returns": r.tolist(), "mean_return": float(r.mean()), "std_return": float(r.std()),
            "mean_score": res.mean_score, "eval_path": res.eval_path}


def run(steps: int, episodes: int, workdir: Path) -> dict[str, Any]:
    """Generate the data, train BC, evaluate random, the controller and BC on the same reset seeds."""
    tic = time.perf_counter()
    w, b = reach_controller()
    path = adroit_file(workdir / "door-reach.hdf5", TASK, episodes=episodes, seed=0, policy=Linear(w, b, NOISE))
    dataset = offreg.load_dataset(path, env=TASK)
    data_s = time.perf_counter() - tic

    def ev(agent: Any) -> Any:
        return evaluate(agent, dataset, episodes=EVAL_EPISODES, seed=EVAL_SEED)

    random_res, data_res = ev(Uniform(dataset.info.act_dim)), ev(Linear(w, b))
    tic = time.perf_counter()
    result = offreg.train("bc", dataset, steps=steps, seeds=SEEDS, eval_every=0, out_dir=workdir / "run",
                          progress=False)
    train_s = time.perf_counter() - tic
    bc = [ev(result.agent(s)) for s in result.seeds]
    r_rand, r_data = np.asarray(random_res.returns), np.asarray(data_res.returns)
    gap = float(r_data.mean() - r_rand.mean())
    se = float(np.sqrt(r_data.var(ddof=1) / r_data.size + r_rand.var(ddof=1) / r_rand.size))
    recovered = [float((np.mean(x.returns) - r_rand.mean()) / gap) for x in bc]
    return {
        "criterion": (f"for each of {SEEDS} BC seeds: R_bc - R_random >= {FRACTION} (R_data - R_random), mean "
                      f"returns over {EVAL_EPISODES} episodes (reset seeds {EVAL_SEED}.."
                      f"{EVAL_SEED + EVAL_EPISODES - 1}) in offreg's {TASK}; void unless R_data - R_random > 3 "
                      "standard errors"),
        "passed": bool(gap > 3 * se and all(f >= FRACTION for f in recovered)),
        "gap_above_random": gap, "gap_standard_error": se,
        "fraction_recovered": dict(zip(map(str, result.seeds), recovered, strict=True)),
        "random": _summary(random_res), "data_policy": _summary(data_res),
        "bc": {str(s): _summary(x) for s, x in zip(result.seeds, bc, strict=True)},
        "dataset": {"transitions": int(dataset.transitions.observations.shape[0]), "episodes": episodes,
                    "behavior_return_mean": _metadata(path, "behavior_return_mean"), "noise_std": NOISE,
                    "policy": str(Linear(w, b, NOISE))},
        "training": {"agent": "bc", "steps": steps, "seeds": result.seeds, "config": dict(vars(result.config))},
        "wall_time_s": {"data": data_s, "train": train_s},
    }


def _metadata(path: Path, key: str) -> float:
    with h5py.File(path) as f:
        return float(f[f"metadata/{key}"][()])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000, help="BC gradient steps per seed (default 5000)")
    p.add_argument("--episodes", type=int, default=50, help="episodes of the noisy controller (default 50)")
    p.add_argument("--out", type=Path, default=Path("experiments/domains/results/learning_check.json"))
    args = p.parse_args(argv)
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        doc = run(args.steps, args.episodes, Path(tmp))
    doc["wall_time_s"]["total"] = time.perf_counter() - tic
    doc["command"] = "python experiments/domains/learning_check.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    doc["versions"] = {**versions(), **simulator_versions(), **package_versions(("gymnasium-robotics",))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=1, default=str) + "\n")
    print(json.dumps({k: doc[k] for k in ("passed", "gap_above_random", "gap_standard_error",
                                           "fraction_recovered")}, indent=1))
    print(f"random {doc['random']['mean_return']:.2f}, controller {doc['data_policy']['mean_return']:.2f}, BC "
          + ", ".join(f"{v['mean_return']:.2f}" for v in doc["bc"].values()) + f"; wrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
