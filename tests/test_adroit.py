"""D4RL's Adroit tasks on Gymnasium-Robotics: what matches D4RL's ``*_v0.py`` environments and what offreg fixes.

D4RL's observation, reward and success functions are written here a second time, from the text of
``Farama-Foundation/D4RL:d4rl/hand_manipulation_suite/{door,pen,hammer,relocate}_v0.py`` and
``d4rl/utils/quatmath.py``, with MuJoCo's named accessors (``data.site(name).xpos``) instead of the ids
offreg's wrapper uses, and applied to the simulator state after each step of random actions.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

pytest.importorskip("gymnasium_robotics")

from offreg.envs import adroit, make_env  # noqa: E402
from offreg.errors import EnvironmentError_  # noqa: E402

TASKS = ("door", "pen", "hammer", "relocate")
D4RL_DIMS = {"door": (39, 28), "pen": (45, 24), "hammer": (46, 26), "relocate": (39, 30)}
D4RL_HORIZON = {"door": 200, "pen": 100, "hammer": 200, "relocate": 200}


# --- D4RL, written again from its source ---------------------------------------------------------
def quat2euler(q):
    """quatmath.quat2euler: Euler angles e with R = Rx(e0) Ry(e1) Rz(e2) (its ``mat2euler`` reads them off
    R's transpose) of a (w, x, y, z) quaternion; scipy calls this convention intrinsic "XYZ"."""
    return Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_euler("XYZ")


def euler2quat(e):
    """quatmath.euler2quat, as a (w, x, y, z) quaternion with w >= 0."""
    x, y, z, w = Rotation.from_euler("XYZ", e).as_quat()
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q


def site(data, name):
    return np.array(data.site(name).xpos)


def body(data, name):
    return np.array(data.body(name).xpos)


def d4rl_obs(task, model, data):
    qp, qv = np.array(data.qpos), np.array(data.qvel)
    if task == "door":
        hinge = data.joint("door_hinge").qpos[0]
        palm, handle = site(data, "S_grasp"), site(data, "S_handle")
        is_open = 1.0 if hinge > 1.0 else -1.0
        return np.concatenate([qp[1:-2], [qp[-1]], [hinge], palm, handle, palm - handle, [is_open]])
    if task == "pen":
        pen, ball = body(data, "Object"), site(data, "eps_ball")
        length = np.linalg.norm(site(data, "object_top") - site(data, "object_bottom"))
        tlength = np.linalg.norm(site(data, "target_top") - site(data, "target_bottom"))
        orien = (site(data, "object_top") - site(data, "object_bottom")) / length
        target = (site(data, "target_top") - site(data, "target_bottom")) / tlength
        return np.concatenate([qp[:-6], pen, qv[-6:], orien, target, pen - ball, orien - target])
    if task == "hammer":
        hammer = body(data, "Object")
        rot = quat2euler(np.array(data.body("Object").xquat))
        nail = np.clip(data.sensor("S_nail").data[0], -1.0, 1.0)
        return np.concatenate([qp[:-6], np.clip(qv, -1, 1)[-6:], site(data, "S_grasp"), hammer, rot,
                               site(data, "S_target"), [nail]])
    palm, ball, target = site(data, "S_grasp"), body(data, "Object"), site(data, "target")
    return np.concatenate([qp[:-6], palm - ball, palm - target, ball - target])


def d4rl_step(task, model, data):
    """(reward, goal_achieved, done) of D4RL's step, from the state after it."""
    if task == "door":
        hinge = data.joint("door_hinge").qpos[0]
        r = -0.1 * np.linalg.norm(site(data, "S_grasp") - site(data, "S_handle"))
        r -= 0.1 * (hinge - 1.57) ** 2 + 1e-5 * np.sum(np.square(data.qvel))
        r += sum(b for t, b in ((0.2, 2), (1.0, 8), (1.35, 10)) if hinge > t)
        return r, hinge >= 1.35, False
    if task == "pen":
        pen = body(data, "Object")
        dist = np.linalg.norm(pen - site(data, "eps_ball"))
        a = site(data, "object_top") - site(data, "object_bottom")
        b = site(data, "target_top") - site(data, "target_bottom")
        sim = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        r = sim - dist + (10 if dist < 0.075 and sim > 0.9 else 0) + (50 if dist < 0.075 and sim > 0.95 else 0)
        fell = pen[2] < 0.075
        return r - 5 * fell, dist < 0.075 and sim > 0.95, fell
    if task == "hammer":
        hammer, head, nail = body(data, "Object"), site(data, "tool"), site(data, "S_target")
        into = np.linalg.norm(nail - site(data, "nail_goal"))
        r = -0.1 * np.linalg.norm(site(data, "S_grasp") - hammer) - np.linalg.norm(head - nail) - 10 * into
        r -= 1e-2 * np.linalg.norm(data.qvel)
        r += (2 if hammer[2] > 0.04 and head[2] > 0.04 else 0) + (25 if into < 0.02 else 0) + (75 if into < 0.01 else 0)
        return r, into < 0.01, False
    palm, ball, target = site(data, "S_grasp"), body(data, "Object"), site(data, "target")
    r = -0.1 * np.linalg.norm(palm - ball)
    if ball[2] > 0.04:
        r += 1.0 - 0.5 * np.linalg.norm(palm - target) - 0.5 * np.linalg.norm(ball - target)
    d = np.linalg.norm(ball - target)
    return r + (10 if d < 0.1 else 0) + (20 if d < 0.05 else 0), d < 0.1, False


def run(env, seed, steps, actions=None):
    """Reset with ``seed`` and step uniform actions; yield (obs, reward, terminated, info, model, data, ctrl)."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    base = env.unwrapped
    yield obs, None, False, {}, base.model, base.data, None
    for _ in range(steps):
        a = rng.uniform(-1, 1, env.action_space.shape) if actions is None else actions
        obs, r, term, trunc, info = env.step(a.astype(np.float32))
        yield obs, r, term, info, base.model, base.data, np.array(base.data.ctrl)
        if term or trunc:
            return


@pytest.fixture(scope="module")
def envs():
    out = {t: make_env(t) for t in TASKS}
    yield out
    for e in out.values():
        e.close()


# --- observation, reward, success, termination --------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_observation_equals_d4rl(envs, task):
    env = envs[task]
    assert env.observation_space.shape == (D4RL_DIMS[task][0],)
    for seed in (0, 1):
        for obs, *_, model, data, _ in run(env, seed, 25):
            np.testing.assert_allclose(obs, d4rl_obs(task, model, data), rtol=0, atol=1e-12)


@pytest.mark.parametrize("task", TASKS)
def test_reward_success_and_termination_equal_d4rl(envs, task):
    env = envs[task]
    for seed in (0, 1, 2):
        for _, r, term, info, model, data, ctrl in run(env, seed, 30):
            if ctrl is None:
                continue
            want_r, want_goal, want_done = d4rl_step(task, model, data)
            assert r == pytest.approx(want_r, abs=1e-12)
            assert info["goal_achieved"] == want_goal
            assert term == want_done


# The states above are near the reset pose and reach no bonus: place each task at stages of its
# progress on both sides of every bonus and success threshold.
STAGES = {
    "door": [0.1, 0.19, 0.21, 0.99, 1.01, 1.34, 1.35, 1.36, 1.5],  # hinge angle (bonuses past 0.2, 1.0, 1.35)
    # nail slide s: the nail is 0.091 - s from its goal (bonuses within 0.02, 0.01)
    "hammer": [0.0, 0.0705, 0.0715, 0.0805, 0.0815, 0.085],
    # ball on the table, or this far above the target (bonuses within 0.1, 0.05)
    "relocate": [None, 0.12, 0.101, 0.099, 0.051, 0.049, 0.0],
    # (pen-target angle, pen offset): similarity cos(angle) vs 0.9 and 0.95, distance vs 0.075
    "pen": [(0.0, 0.0), *((np.arccos(c), 0.0) for c in (0.951, 0.949, 0.901, 0.899, 0.5)), (0.0, 0.074), (0.0, 0.076)],
}


def _place(task, model, data, stage):
    import mujoco

    if task == "door":
        data.joint("door_hinge").qpos[0] = stage
    elif task == "hammer":
        data.joint("nail_dir").qpos[0] = stage
    elif task == "relocate" and stage is not None:
        for axis, joint in enumerate(("OBJTx", "OBJTy", "OBJTz")):
            data.joint(joint).qpos[0] = model.site("target").pos[axis] - model.body("Object").pos[axis]
        data.joint("OBJTz").qpos[0] += stage
    elif task == "pen":  # the pen rests on the target's place; the target is the pen turned by `angle`
        angle, offset = stage
        v = site(data, "object_top") - site(data, "object_bottom")
        u = np.cross(v, [0.0, 0.0, 1.0]) if abs(v[2]) < 0.9 * np.linalg.norm(v) else np.cross(v, [1.0, 0.0, 0.0])
        turn = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * u / np.linalg.norm(u)])
        mujoco.mju_mulQuat(model.body("target").quat, turn, data.body("Object").xquat)
        data.joint("OBJTz").qpos[0] = offset  # this slide moves the pen sideways
    mujoco.mj_forward(model, data)


@pytest.mark.parametrize("task", TASKS)
def test_progress_states_reward_and_success_equal_d4rl(envs, task):
    env = envs[task]
    base = env.unwrapped
    goals, rewards = [], []
    for stage in STAGES[task]:
        env.reset(seed=3)
        _place(task, base.model, base.data, stage)
        outcome = adroit.d4rl_outcome(task, base.model, base.data)(base.data)
        want_r, want_goal, want_done = d4rl_step(task, base.model, base.data)
        assert outcome.reward == pytest.approx(want_r, abs=1e-12), stage
        assert (outcome.goal_achieved, outcome.terminal) == (want_goal, want_done), stage
        goals.append(bool(want_goal))
        rewards.append(want_r)
    assert any(goals) and not all(goals)
    assert len(np.unique(np.round(rewards, 6))) == len(rewards)


def test_pen_falls_ends_episode_as_in_d4rl(envs):
    """D4RL's pen episode ends (done, reward -5) when the pen drops below 0.075; Gymnasium-Robotics
    does not end it."""
    import mujoco

    env = envs["pen"]
    base = env.unwrapped
    for drop, falls in ((0.2, True), (0.0, False)):
        env.reset(seed=0)
        base.data.joint("OBJTx").qpos[0] = drop  # this slide points down: the pen goes from 0.25 to 0.05
        mujoco.mj_forward(base.model, base.data)
        _, r, term, _, info = env.step(np.zeros(24, np.float32))
        assert term == falls == (body(base.data, "Object")[2] < 0.075)
        assert r == pytest.approx(d4rl_step("pen", base.model, base.data)[0], abs=1e-12)
        assert info["gymnasium_robotics_reward"] == pytest.approx(r, abs=1e-12)
        assert base.step(np.zeros(24, np.float32))[2] is False  # Gymnasium-Robotics' pen never terminates


@pytest.mark.parametrize(
    ("task", "pinned"),
    [("door", "+0.1|palm-handle|"), ("hammer", "+0.1|palm-hammer|"), ("relocate", "+0.1|palm-ball|"), ("pen", None)],
)
def test_gymnasium_robotics_dense_reward_difference_is_pinned(envs, task, pinned):
    """Gymnasium-Robotics 1.2.1+'s dense rewards of door, hammer and relocate differ from D4RL's by
    exactly ``+0.2 * |palm - object|`` (the sign of the approach term); pen's equals D4RL's."""
    env = envs[task]
    obj = {"door": lambda d: site(d, "S_handle"), "hammer": lambda d: body(d, "Object"),
           "relocate": lambda d: body(d, "Object")}
    differs = 0
    for _, r, _, info, _, data, ctrl in run(env, 4, 20):
        if ctrl is None:
            continue
        gap = info["gymnasium_robotics_reward"] - r
        if pinned is None:
            assert gap == pytest.approx(0.0, abs=1e-12)
        else:
            assert gap == pytest.approx(0.2 * np.linalg.norm(site(data, "S_grasp") - obj[task](data)), abs=1e-12)
            differs += gap > 1e-3
    assert pinned is None or differs > 0


# --- actions, reset distribution, time limit -----------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_actions_rescale_to_actuator_ranges_as_d4rl(envs, task):
    """D4RL: clip to [-1, 1], then ctrl = mid + a * half-range of ``actuator_ctrlrange``; wrist
    actuators have gain 10 / bias -10, finger actuators gain 1 / bias -1."""
    env = envs[task]
    assert env.action_space.shape == (D4RL_DIMS[task][1],)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.reset(seed=0)
    model = env.unwrapped.model
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    a = np.linspace(-1.5, 1.5, model.nu)  # beyond the bounds at both ends: D4RL clips first
    env.step(a.astype(np.float32))
    want = (lo + hi) / 2 + np.clip(a, -1, 1).astype(np.float32) * (hi - lo) / 2
    np.testing.assert_allclose(env.unwrapped.data.ctrl, want, rtol=0, atol=1e-12)
    names = [model.actuator(i).name for i in range(model.nu)]
    wrist = [i for i, n in enumerate(names) if n in ("A_WRJ1", "A_WRJ0")]
    fingers = list(range(names.index("A_FFJ3"), names.index("A_THJ0") + 1))
    np.testing.assert_array_equal(model.actuator_gainprm[wrist, :3], [[10, 0, 0]] * 2)
    np.testing.assert_array_equal(model.actuator_biasprm[wrist, :3], [[0, -10, 0]] * 2)
    np.testing.assert_array_equal(model.actuator_gainprm[fingers, :3], [[1, 0, 0]] * len(fingers))
    np.testing.assert_array_equal(model.actuator_biasprm[fingers, :3], [[0, -1, 0]] * len(fingers))


RESETS = 60


@pytest.mark.parametrize("task", TASKS)
def test_reset_distribution_matches_d4rl(envs, task):
    """Every reset starts at the model's rest pose (qpos0, zero velocity) with D4RL's randomized
    object or goal: door frame x~U(-0.3,-0.2), y~U(0.25,0.35), z~U(0.252,0.35); pen target Euler
    angles (U(-1,1), U(-1,1), 0); hammer board z~U(0.1,0.25); relocate ball x~U(-0.15,0.15),
    y~U(-0.15,0.3) and target x,y~U(-0.2,0.2), z~U(0.15,0.35). The draws fill those ranges."""
    env = envs[task]
    draws = []
    for seed in range(RESETS):
        env.reset(seed=seed)
        model, data = env.unwrapped.model, env.unwrapped.data
        np.testing.assert_array_equal(data.qpos, model.qpos0)
        np.testing.assert_array_equal(data.qvel, 0.0)
        if task == "door":
            draws.append(model.body("frame").pos.copy())
        elif task == "pen":
            q = model.body("target").quat.copy()
            e = quat2euler(q)
            np.testing.assert_allclose(euler2quat([e[0], e[1], 0.0]), q, atol=1e-12)
            draws.append(e[:2])
        elif task == "hammer":
            draws.append(model.body("nail_board").pos[2:].copy())
        else:
            draws.append(np.concatenate([model.body("Object").pos[:2], model.site("target").pos]))
    draws = np.array(draws)
    lo, hi = {
        "door": ([-0.3, 0.25, 0.252], [-0.2, 0.35, 0.35]),
        "pen": ([-1, -1], [1, 1]),
        "hammer": ([0.1], [0.25]),
        "relocate": ([-0.15, -0.15, -0.2, -0.2, 0.15], [0.15, 0.3, 0.2, 0.2, 0.35]),
    }[task]
    lo, hi = np.array(lo), np.array(hi)
    assert np.all(draws >= lo) and np.all(draws <= hi)
    span = (draws.max(0) - draws.min(0)) / (hi - lo)
    assert np.all(span > 0.85), span  # 60 uniform draws cover > 85% of the range with prob > 0.999


@pytest.mark.parametrize("task", TASKS)
def test_time_limit_is_d4rls(envs, task):
    env = envs[task]
    assert env.spec.max_episode_steps == D4RL_HORIZON[task]
    steps = sum(1 for _ in run(env, 0, 1000, actions=np.zeros(env.action_space.shape))) - 1
    assert steps == D4RL_HORIZON[task] or task == "pen"  # pen may fall (terminate) earlier


def test_missing_robotics_extra_is_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(EnvironmentError_) as e:
        make_env("door")
    assert 'pip install "offreg[robotics]"' in str(e.value) and "\n" not in str(e.value)


def test_import_notice_silenced_other_stderr_kept(monkeypatch, capsys):
    import types

    fake = types.ModuleType("gymnasium_robotics")
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    monkeypatch.delitem(sys.modules, "gymnasium_robotics")

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name != "gymnasium_robotics":
                return None
            import importlib.machinery

            class Loader:
                def create_module(self, spec):
                    return fake

                def exec_module(self, module):
                    print("AdroitHandDoorDense-v1 environment's reward functions were updated in v1.2.1 ...",
                          file=sys.stderr)
                    print("another message", file=sys.stderr)

            return importlib.machinery.ModuleSpec(name, Loader())

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    monkeypatch.setattr(adroit.gym, "register_envs", lambda m: None)
    assert adroit.import_robotics("door", silence_reward_notice=True) is fake  # as make_adroit calls it
    err = capsys.readouterr().err
    assert "another message" in err and "v1.2.1" not in err
