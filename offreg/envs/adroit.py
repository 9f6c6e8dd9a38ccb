"""D4RL's Adroit hand tasks on Gymnasium-Robotics, with D4RL's rewards: ``door``, ``pen``, ``hammer``, ``relocate``.

D4RL's Adroit data (``door-human-v1``, ...) was collected in ``d4rl.hand_manipulation_suite``'s
``DoorEnvV0``/``PenEnvV0``/``HammerEnvV0``/``RelocateEnvV0`` (mjrl on mujoco-py, MuJoCo 2.0; the v1
datasets were re-collected in the same classes). Gymnasium-Robotics' ``AdroitHand*-v1`` re-implement
them on the ``mujoco`` bindings with the same model files (``DAPG_*.xml``; only the include paths and
the removed ``apirate`` option differ, and the 29 meshes are byte-identical), the same observation
layout, the same ``[-1, 1]`` actions rescaled to the actuator ranges, the same reset distribution and
the same success rule. What differs is what the scores are made of:

=========  ===========================  ==============================================================
name       Gymnasium environment        what offreg changes
=========  ===========================  ==============================================================
door       ``AdroitHandDoor-v1``        reward: Gymnasium-Robotics (since 1.2.1) *adds*
                                        ``0.1 * |palm - handle|``, D4RL subtracts it
pen        ``AdroitHandPen-v1``         termination: D4RL ends the episode when the pen falls (its
                                        height < 0.075); Gymnasium-Robotics never terminates.
                                        Time limit 100 (D4RL) instead of 200
hammer     ``AdroitHandHammer-v1``      reward: ``+0.1 * |palm - hammer|`` instead of ``-0.1 * ...``
relocate   ``AdroitHandRelocate-v1``    reward: ``+0.1 * |palm - ball|`` instead of ``-0.1 * ...``
=========  ===========================  ==============================================================

:class:`D4RLAdroit` therefore recomputes D4RL's dense reward (bonuses included), ``goal_achieved``
and pen's termination from the simulator state after each step, and keeps the environment's
observation, which equals D4RL's. ``tests/test_adroit.py`` compares all of it with D4RL's functions
written independently from ``d4rl/hand_manipulation_suite/{door,pen,hammer,relocate}_v0.py``. What
remains different is the simulator (MuJoCo 2.0 then, the installed ``mujoco`` now), as for locomotion.

Gymnasium-Robotics is an optional extra (``pip install "offreg[robotics]"``); it is imported when an
environment is built, and the notice it prints on import about the changed dense rewards is
silenced, because offreg does not use those rewards.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from offreg.envs import register_env
from offreg.envs.recorded import import_robotics


@dataclasses.dataclass(frozen=True)
class AdroitTask:
    """How a D4RL Adroit task maps onto Gymnasium-Robotics.

    Attributes:
      gym_id: the Gymnasium-Robotics environment id (dense reward).
      max_episode_steps: D4RL's time limit (``d4rl/hand_manipulation_suite/__init__.py``).
    """

    gym_id: str
    max_episode_steps: int


ADROIT: dict[str, AdroitTask] = {
    "door": AdroitTask("AdroitHandDoor-v1", 200),
    "pen": AdroitTask("AdroitHandPen-v1", 100),
    "hammer": AdroitTask("AdroitHandHammer-v1", 200),
    "relocate": AdroitTask("AdroitHandRelocate-v1", 200),
}
"""offreg environment name -> Gymnasium-Robotics id and D4RL's time limit."""


class D4RLStep(NamedTuple):
    """D4RL's outcome of a step, from the simulator state after it."""

    reward: float
    goal_achieved: bool
    terminal: bool


# --- D4RL's rewards, from the simulator state (after the step) -----------------------------------
def _ids(model: Any, kind: str, *names: str) -> list[int]:
    import mujoco

    obj = {"site": mujoco.mjtObj.mjOBJ_SITE, "body": mujoco.mjtObj.mjOBJ_BODY, "joint": mujoco.mjtObj.mjOBJ_JOINT}[kind]
    return [mujoco.mj_name2id(model, obj, n) for n in names]


def _norm(x: np.ndarray) -> float:
    return float(np.linalg.norm(x))


def door_reward(model: Any) -> Callable[[Any], D4RLStep]:
    """``DoorEnvV0``: approach the handle, open the door toward 1.57 rad, small velocity cost, bonuses
    2/8/10 past 0.2/1.0/1.35 rad; success when the hinge angle is >= 1.35."""
    grasp, handle = _ids(model, "site", "S_grasp", "S_handle")
    (hinge,) = _ids(model, "joint", "door_hinge")
    hinge_adr = int(model.jnt_dofadr[hinge])  # D4RL indexes qpos with the hinge's dof address

    def outcome(data: Any) -> D4RLStep:
        door = float(data.qpos[hinge_adr])
        r = -0.1 * _norm(data.site_xpos[grasp] - data.site_xpos[handle])
        r += -0.1 * (door - 1.57) * (door - 1.57)
        r += -1e-5 * float(np.sum(data.qvel**2))
        r += 2.0 * (door > 0.2) + 8.0 * (door > 1.0) + 10.0 * (door > 1.35)
        return D4RLStep(r, door >= 1.35, False)

    return outcome


def pen_reward(model: Any, data: Any) -> Callable[[Any], D4RLStep]:
    """``PenEnvV0``: pen position and orientation toward the target, bonuses 10/50 when within 0.075
    and aligned better than 0.9/0.95; a fallen pen (height < 0.075) costs 5 and ends the episode.
    Pen and target lengths are measured in ``data`` (they are rigid: any state gives them)."""
    (obj,) = _ids(model, "body", "Object")
    ball, obj_t, obj_b, tar_t, tar_b = _ids(model, "site", "eps_ball", "object_top", "object_bottom",
                                           "target_top", "target_bottom")
    pen_length = _norm(data.site_xpos[obj_t] - data.site_xpos[obj_b])
    tar_length = _norm(data.site_xpos[tar_t] - data.site_xpos[tar_b])

    def outcome(data: Any) -> D4RLStep:
        obj_pos = data.xpos[obj]
        dist = _norm(obj_pos - data.site_xpos[ball])
        orien = (data.site_xpos[obj_t] - data.site_xpos[obj_b]) / pen_length
        target = (data.site_xpos[tar_t] - data.site_xpos[tar_b]) / tar_length
        similarity = float(np.dot(orien, target))
        r = -dist + similarity
        r += 10.0 * (dist < 0.075 and similarity > 0.9) + 50.0 * (dist < 0.075 and similarity > 0.95)
        fallen = bool(obj_pos[2] < 0.075)
        r -= 5.0 * fallen
        return D4RLStep(r, dist < 0.075 and similarity > 0.95, fallen)

    return outcome


def hammer_reward(model: Any) -> Callable[[Any], D4RLStep]:
    """``HammerEnvV0``: palm to hammer, hammer head to nail, nail into the board, velocity cost;
    bonuses 2 (hammer lifted), 25/75 (nail within 0.02/0.01 of its goal); success within 0.01."""
    (obj,) = _ids(model, "body", "Object")
    grasp, tool, nail, goal = _ids(model, "site", "S_grasp", "tool", "S_target", "nail_goal")

    def outcome(data: Any) -> D4RLStep:
        obj_pos, tool_pos = data.xpos[obj], data.site_xpos[tool]
        nail_goal = _norm(data.site_xpos[nail] - data.site_xpos[goal])
        r = -0.1 * _norm(data.site_xpos[grasp] - obj_pos)
        r -= _norm(tool_pos - data.site_xpos[nail])
        r -= 10.0 * nail_goal
        r -= 1e-2 * _norm(data.qvel)
        r += 2.0 * (obj_pos[2] > 0.04 and tool_pos[2] > 0.04)
        r += 25.0 * (nail_goal < 0.02) + 75.0 * (nail_goal < 0.01)
        return D4RLStep(r, nail_goal < 0.01, False)

    return outcome


def relocate_reward(model: Any) -> Callable[[Any], D4RLStep]:
    """``RelocateEnvV0``: palm to ball; once the ball is lifted (> 0.04) a bonus of 1 and palm and
    ball toward the target; bonuses 10/20 within 0.1/0.05 of it; success within 0.1."""
    (obj,) = _ids(model, "body", "Object")
    grasp, target = _ids(model, "site", "S_grasp", "target")

    def outcome(data: Any) -> D4RLStep:
        obj_pos, palm, goal = data.xpos[obj], data.site_xpos[grasp], data.site_xpos[target]
        to_goal = _norm(obj_pos - goal)
        r = -0.1 * _norm(palm - obj_pos)
        if obj_pos[2] > 0.04:
            r += 1.0 - 0.5 * _norm(palm - goal) - 0.5 * to_goal
        r += 10.0 * (to_goal < 0.1) + 20.0 * (to_goal < 0.05)
        return D4RLStep(r, to_goal < 0.1, False)

    return outcome


def d4rl_outcome(name: str, model: Any, data: Any) -> Callable[[Any], D4RLStep]:
    """D4RL's ``outcome(data) -> D4RLStep`` of task ``name`` for ``model`` (``data``: any state of it)."""
    if name == "pen":
        return pen_reward(model, data)
    return {"door": door_reward, "hammer": hammer_reward, "relocate": relocate_reward}[name](model)


class D4RLAdroit(gym.Wrapper):
    """A Gymnasium-Robotics Adroit environment that returns D4RL's reward and termination.

    ``step`` returns the environment's observation, D4RL's dense reward, ``terminated`` when D4RL's
    episode ends (pen only: the pen fell), and ``info`` with ``goal_achieved`` (D4RL's success flag)
    and ``gymnasium_robotics_reward`` (the wrapped environment's own reward, for comparison).
    """

    def __init__(self, env: gym.Env, task: str):
        super().__init__(env)
        self.task = task
        self._outcome: Callable[[Any], D4RLStep] | None = None

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        base = self.env.unwrapped
        self._outcome = d4rl_outcome(self.task, base.model, base.data)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        assert self._outcome is not None, "call reset before step"
        out = self._outcome(self.env.unwrapped.data)
        info = {**info, "goal_achieved": bool(out.goal_achieved), "gymnasium_robotics_reward": float(reward)}
        return obs, float(out.reward), bool(terminated or out.terminal), truncated, info


def make_adroit(name: str, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """Build the environment that evaluates a D4RL Adroit policy.

    Args:
      name: ``door``, ``pen``, ``hammer`` or ``relocate``.
      max_episode_steps: time limit (default D4RL's: door, hammer, relocate 200; pen 100).
      **kwargs: extra ``gymnasium.make`` arguments (e.g. ``render_mode="rgb_array"``).

    Returns:
      :class:`D4RLAdroit` around ``gymnasium.make(AdroitHand<Task>-v1)``: observations of 39/45/46/39
      dims, actions ``Box(-1, 1)`` of 28/24/26/30 dims.

    Raises:
      EnvironmentError_: Gymnasium-Robotics is not installed.
    """
    import_robotics(name, silence_reward_notice=True)
    task = ADROIT[name]
    env = gym.make(task.gym_id, max_episode_steps=max_episode_steps or task.max_episode_steps, **kwargs)
    return D4RLAdroit(env, name)


for _name in ADROIT:
    register_env(_name, functools.partial(make_adroit, _name), eval_path="gymnasium-robotics+d4rl-reward")
