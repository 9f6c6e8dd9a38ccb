"""D4RL's AntMaze evaluation environments on the ``mujoco`` bindings: ``antmaze-umaze``, ``-medium``, ``-large``.

A port of D4RL's ``AntMazeEnv`` (``d4rl/locomotion/{ant,maze_env,goal_reaching_env,wrappers}.py`` and
``assets/ant.xml``, Farama-Foundation/D4RL, Apache-2.0) as D4RL registers it for its ``antmaze-*``
datasets (``eval=True``, ``reward_type='sparse'``, ``maze_size_scaling=4.0``, wrapped in
``NormalizedBoxEnv``), written from that source's description without mujoco-py:

- **Model**: D4RL's ant (not Gymnasium's): 0.02 s timestep, RK4, motors with control range
  [-30, 30] and gear 1, frame skip 5 (0.1 s per step). The maze adds one box per wall cell ``1``:
  centre ``(j*4 - x0, i*4 - y0, 1)``, half-sizes ``(2, 2, 1)`` (height 0.5 * 4).
- **World frame**: cell (row ``i``, column ``j``) has centre ``(j*4 - x0, i*4 - y0)`` with
  ``(x0, y0) = (4 j_r, 4 i_r)`` of the start cell ``r``: the start is the origin and ``y`` grows with the row.
- **Observation** (29): ``qpos[:15]`` (torso x, y, z, quaternion, 8 joint angles) then ``qvel[:14]``;
  no contact forces.
- **Action** (8) in ``[-1, 1]``, mapped to the motors as ``-30 + (a + 1) * 0.5 * 60`` and clipped.
- **Reset**: ``qpos = qpos0 + U(-0.1, 0.1)`` (all 15 entries, quaternion included, unnormalised),
  ``qvel = 0.1 * N(0, 1)``; ``qpos0`` puts the torso at the origin, 0.75 high, joints at 0.
- **Goal**: the maze's single ``g`` cell centre plus ``U(0, 1) + U(0, 0.5)`` on each coordinate, then
  ``max(., 0)``. ``v2_resets=True`` (D4RL's ``-v2``) draws a new goal at every reset; ``False`` (``-v0``/
  ``-v1``) keeps the goal of the first reset.
- **Reward**: 1.0 when the torso's ``(x, y)`` is within 0.5 of the goal after the step, else 0.0; the
  episode terminates there, so a return is 0 or 1, and with D4RL's reference scores 0 and 1 the
  normalized score is ``100 * success``. Time limit: 700 steps (umaze), 1000 (medium, large).

Deviations, all documented in ``docs/domains.md``: the simulator is ``mujoco`` (>= 3) instead of
mujoco-py with MuJoCo 2.x, which changes trajectories numerically; D4RL draws the goal noise from the
unseeded global ``np.random`` (and v0/v1 draw it once per process), here it comes from the
environment's seeded generator; the model keeps only what enters the physics (no textures, light).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from offreg.envs import register_env
from offreg.errors import EnvironmentError_

MAZE_SIZE_SCALING = 4.0
"""Side of a maze cell (D4RL's ``maze_size_scaling`` for every ``antmaze-*`` id)."""

MAZE_HEIGHT = 0.5
"""Wall height as a fraction of the cell size (D4RL's ``maze_height``): walls are 2.0 high."""

SUCCESS_RADIUS = 0.5
"""The sparse reward's radius: ``||xy - goal|| <= 0.5`` (``goal_reaching_env.py``)."""

FRAME_SKIP = 5
"""Simulator steps per environment step (``AntEnv``: ``MujocoEnv.__init__(self, file_path, 5)``)."""

CTRL_RANGE = 30.0
"""Motor control range ``[-30, 30]`` of D4RL's ``ant.xml``; ``NormalizedBoxEnv`` maps ``[-1, 1]`` onto it."""

# The evaluation maps D4RL registers for its datasets (``maze_env.U_MAZE_TEST``, ``BIG_MAZE_TEST``,
# ``HARDEST_MAZE_TEST``): '#' wall, '.' free, 'r' start, 'g' goal. Row i is the list index.
MAZES: dict[str, tuple[str, ...]] = {
    "umaze": (
        "#####",
        "#r..#",
        "###.#",
        "#g..#",
        "#####",
    ),
    "medium": (
        "########",
        "#r.##..#",
        "#..#...#",
        "##...###",
        "#..#...#",
        "#.#..#.#",
        "#...#.g#",
        "########",
    ),
    "large": (
        "############",
        "#r...#.....#",
        "#.##.#.#.#.#",
        "#......#...#",
        "#.####.###.#",
        "#..#.#.....#",
        "##.#.#.#.###",
        "#..#...#.g.#",
        "############",
    ),
}
"""Maze maps by size: ``umaze`` (umaze, umaze-diverse), ``medium`` (medium-play/-diverse), ``large``."""

MAX_EPISODE_STEPS = {"umaze": 700, "medium": 1000, "large": 1000}
"""D4RL's registered time limits."""

ENV_NAMES = {maze: f"antmaze-{maze}" for maze in MAZES}
"""offreg environment name of each maze."""

MINARI_DATASETS: dict[str, str] = {
    kind: f"D4RL/antmaze/{kind}-v1"
    for kind in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
}
"""D4RL dataset kind -> the Minari dataset regenerated on Gymnasium-Robotics' ``AntMaze_*`` (its matching world)."""

GYMNASIUM_ROBOTICS_MAZES = {"AntMaze_UMaze": "umaze", "AntMaze_Medium": "medium", "AntMaze_Large": "large"}
"""Gymnasium-Robotics AntMaze id prefixes and the D4RL maze each re-implements."""


def maze_for_dataset(name: str) -> str:
    """The maze of a D4RL AntMaze dataset name: ``antmaze-medium-play-v2`` -> ``medium``."""
    return name.removeprefix("antmaze-").split("-")[0]


def env_for_dataset(name: str) -> str:
    """The offreg environment of a D4RL AntMaze dataset name: ``antmaze-umaze-diverse-v0`` -> ``antmaze-umaze``."""
    return ENV_NAMES[maze_for_dataset(name)]


def check_gymnasium_robotics_pairing(dataset: str, env_id: str) -> None:
    """Refuse to evaluate a D4RL AntMaze dataset in a Gymnasium-Robotics ``AntMaze_*`` environment.

    Gymnasium-Robotics' AntMaze is a different world: Gymnasium's ant (gear 150, 0.05 s steps), a
    maze centred on the map with ``y`` pointing up the rows' reverse, a dict observation whose
    ``observation`` has 27 entries (105 with contact forces) without the torso ``(x, y)``, and
    success within 0.45 instead of 0.5 (``tests/test_antmaze.py`` pins each difference).

    Raises:
      EnvironmentError_: ``env_id`` is a Gymnasium-Robotics AntMaze id; the message names offreg's port
        and the Minari dataset recorded in ``env_id``'s world.
    """
    prefix = env_id.split("-")[0].removesuffix("Dense").removesuffix("_Diverse_GR").removesuffix("_Diverse_G")
    if prefix not in GYMNASIUM_ROBOTICS_MAZES:
        return
    maze = GYMNASIUM_ROBOTICS_MAZES[prefix]
    kind = dataset.removeprefix("antmaze-").rsplit("-v", 1)[0] if dataset.startswith("antmaze-") else None
    minari = MINARI_DATASETS[kind] if kind in MINARI_DATASETS else " or ".join(
        v for k, v in MINARI_DATASETS.items() if k.split("-")[0] == maze
    )
    raise EnvironmentError_(
        f"D4RL AntMaze dataset {dataset!r} cannot be evaluated in Gymnasium-Robotics' {env_id!r} (another ant model, "
        f"maze frame, 27-dim observation and success radius 0.45): evaluate it in offreg's port of D4RL's "
        f"environment ({ENV_NAMES[maze]!r}), or train on the Minari dataset {minari}, which was recorded in {prefix}"
    )


# --- the model -----------------------------------------------------------------------------------
# The four legs of D4RL's ant, in its body order: (body name, leg direction, ankle axis, ankle range).
# Each leg is a 0.2 x 0.2 hip segment, a hinge about z in [-30, 30] degrees, a second 0.2 x 0.2
# segment and an ankle hinge with the given axis and range, then a 0.4 x 0.4 foot (capsules r=0.08).
_LEGS = (
    ("front_left_leg", (1, 1), "-1 1 0", "30 70"),
    ("front_right_leg", (-1, 1), "1 1 0", "-70 -30"),
    ("back_leg", (-1, -1), "-1 1 0", "-70 -30"),
    ("right_back_leg", (1, -1), "1 1 0", "30 70"),
)
_MOTOR_ORDER = (4, 1, 2, 3)  # the actuators drive hip_k, ankle_k for k in this order


def _leg_xml(k: int, name: str, direction: tuple[int, int], ankle_axis: str, ankle_range: str) -> str:
    dx, dy = 0.2 * direction[0], 0.2 * direction[1]
    seg = f"0 0 0 {dx:g} {dy:g} 0"
    foot = f"0 0 0 {2 * dx:g} {2 * dy:g} 0"
    return f"""
      <body name="{name}" pos="0 0 0">
        <geom type="capsule" size="0.08" fromto="{seg}"/>
        <body name="aux_{k}" pos="{dx:g} {dy:g} 0">
          <joint name="hip_{k}" type="hinge" axis="0 0 1" range="-30 30"/>
          <geom type="capsule" size="0.08" fromto="{seg}"/>
          <body pos="{dx:g} {dy:g} 0">
            <joint name="ankle_{k}" type="hinge" axis="{ankle_axis}" range="{ankle_range}"/>
            <geom type="capsule" size="0.08" fromto="{foot}"/>
          </body>
        </body>
      </body>"""


def cell_center(maze: str, row: int, col: int) -> tuple[float, float]:
    """World ``(x, y)`` of cell ``(row, col)``'s centre: ``(4 col - x0, 4 row - y0)``, start cell at the origin."""
    r_row, r_col = _find(maze, "r")
    return (col - r_col) * MAZE_SIZE_SCALING, (row - r_row) * MAZE_SIZE_SCALING


def _find(maze: str, char: str) -> tuple[int, int]:
    (cell,) = [(i, j) for i, line in enumerate(MAZES[maze]) for j, c in enumerate(line) if c == char]
    return cell


def maze_xml(maze: str) -> str:
    """The MJCF model of D4RL's ant in ``maze`` (``umaze``, ``medium`` or ``large``)."""
    walls = []
    half, z = 0.5 * MAZE_SIZE_SCALING, MAZE_HEIGHT / 2 * MAZE_SIZE_SCALING
    for i, line in enumerate(MAZES[maze]):
        for j, c in enumerate(line):
            if c == "#":
                x, y = cell_center(maze, i, j)
                walls.append(
                    f'<geom name="block_{i}_{j}" type="box" pos="{x:g} {y:g} {z:g}" size="{half:g} {half:g} {z:g}" '
                    'contype="1" conaffinity="1"/>'
                )
    legs = "".join(_leg_xml(k, *leg) for k, leg in enumerate(_LEGS, start=1))
    motors = "".join(
        f'<motor joint="{part}_{k}" ctrlrange="-{CTRL_RANGE:g} {CTRL_RANGE:g}" ctrllimited="true"/>'
        for k in _MOTOR_ORDER for part in ("hip", "ankle")
    )
    return f"""<mujoco model="antmaze">
  <compiler inertiafromgeom="true" angle="degree"/>
  <option timestep="0.02" integrator="RK4"/>
  <default>
    <joint limited="true" armature="1" damping="1"/>
    <geom condim="3" conaffinity="0" margin="0.01" friction="1 0.5 0.5" solref=".02 1" solimp=".8 .8 .01"
          density="5.0"/>
  </default>
  <worldbody>
    <geom name="floor" type="plane" pos="0 0 0" size="40 40 40" conaffinity="1" condim="3"/>
    <body name="torso" pos="0 0 0.75">
      <geom name="torso_geom" type="sphere" size="0.25"/>
      <joint name="root" type="free" limited="false" margin="0.01" armature="0" damping="0"/>{legs}
    </body>
    {"".join(walls)}
  </worldbody>
  <actuator>{motors}</actuator>
</mujoco>"""


# --- the environment -----------------------------------------------------------------------------
class AntMazeEnv(gym.Env):
    """D4RL's AntMaze evaluation environment (see the module docstring for every rule).

    Args:
      maze: ``umaze``, ``medium`` or ``large``.
      v2_resets: draw a new goal at every reset (D4RL ``-v2``); else keep the first reset's goal (``-v0``/``-v1``).
      terminate_at_goal: end the episode when the goal is reached (D4RL's ``eval=True``, used for
        every ``antmaze-*`` id); ``False`` keeps going, as D4RL's data collection did.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, maze: str = "umaze", v2_resets: bool = True, terminate_at_goal: bool = True):
        import mujoco

        if maze not in MAZES:
            raise EnvironmentError_(f"unknown AntMaze maze {maze!r}: use one of {', '.join(MAZES)}")
        self.maze = maze
        self.v2_resets = bool(v2_resets)
        self.terminate_at_goal = bool(terminate_at_goal)
        self.model = mujoco.MjModel.from_xml_string(maze_xml(maze))
        self.data = mujoco.MjData(self.model)
        self._mj_step, self._mj_forward, self._mj_reset = mujoco.mj_step, mujoco.mj_forward, mujoco.mj_resetData
        self.init_qpos = self.data.qpos.copy()  # qpos0, as gym's MujocoEnv takes it (not ant.xml's <custom>)
        self.init_qvel = self.data.qvel.copy()
        self.dt = self.model.opt.timestep * FRAME_SKIP
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (29,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        self.goal_cell = _find(maze, "g")
        self.goal: np.ndarray | None = None

    def sample_goal(self) -> np.ndarray:
        """The goal cell's centre plus ``U(0, 1) + U(0, 0.5)`` per coordinate, floored at 0 (``goal_sampler``)."""
        xy = np.asarray(cell_center(self.maze, *self.goal_cell))
        xy = xy + self.np_random.uniform(0.0, 0.25 * MAZE_SIZE_SCALING, 2)
        xy = xy + self.np_random.uniform(0.0, 0.5, 2) * 0.25 * MAZE_SIZE_SCALING
        return np.maximum(xy, 0.0)

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Set the simulator state (as gym's ``MujocoEnv.set_state``: no quaternion normalisation)."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        self._mj_forward(self.model, self.data)

    def observation(self) -> np.ndarray:
        """``qpos[:15]`` then ``qvel[:14]`` (``AntEnv._get_obs`` with ``expose_all_qpos=True``), float64 ``[29]``."""
        return np.concatenate([self.data.qpos[:15], self.data.qvel[:14]])

    def at_goal(self) -> bool:
        """Whether the torso's ``(x, y)`` is within :data:`SUCCESS_RADIUS` of the goal."""
        return bool(np.linalg.norm(self.data.qpos[:2] - self.goal) <= SUCCESS_RADIUS)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.goal is None or self.v2_resets:
            self.goal = self.sample_goal()
        self._mj_reset(self.model, self.data)
        qpos = self.init_qpos + self.np_random.uniform(-0.1, 0.1, self.model.nq)
        qvel = self.init_qvel + self.np_random.standard_normal(self.model.nv) * 0.1
        self.set_state(qpos, qvel)
        return self.observation(), {"goal": self.goal.copy()}

    def step(self, action):
        if self.goal is None:
            raise EnvironmentError_("AntMazeEnv.step called before reset(): call reset() first")
        a = np.asarray(action, np.float64)
        low, high = -CTRL_RANGE, CTRL_RANGE
        self.data.ctrl[:] = np.clip(low + (a + 1.0) * 0.5 * (high - low), low, high)
        for _ in range(FRAME_SKIP):
            self._mj_step(self.model, self.data)
        success = self.at_goal()
        reward = 1.0 if success else 0.0
        terminated = success and self.terminate_at_goal
        return self.observation(), reward, terminated, False, {"success": success, "goal": self.goal.copy()}


def make_antmaze(maze: str, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """:class:`AntMazeEnv` in a ``TimeLimit`` (default: D4RL's, 700 for umaze and 1000 otherwise)."""
    env = AntMazeEnv(maze, **kwargs)
    return gym.wrappers.TimeLimit(env, max_episode_steps or MAX_EPISODE_STEPS[maze])


for _maze in MAZES:
    register_env(ENV_NAMES[_maze], functools.partial(make_antmaze, _maze), eval_path="d4rl-env")
