"""offreg's port of D4RL's AntMaze (``offreg.envs.antmaze``), its catalogue mapping and its generated data.

The D4RL facts used as expectations are written here from D4RL's source (``d4rl/locomotion/ant.py``,
``maze_env.py``, ``goal_reaching_env.py``, ``wrappers.py``, ``__init__.py``), not read from the module
under test: the observation ``qpos[:15] ++ qvel[:14]``, the action map ``30 * a``, cell (i, j) at
``(4 (j - j_r), 4 (i - i_r))``, the goal cells (umaze (3, 1), medium (6, 6), large (7, 9)), the reset
noise, the 0.5 success radius and the time limits 700/1000.
"""

from __future__ import annotations

import json
import warnings

import h5py
import mujoco
import numpy as np
import pytest

import offreg
from offreg.cli import main
from offreg.data.catalogue import CATALOGUE
from offreg.envs import make_env
from offreg.envs.antmaze import MAZES, AntMazeEnv, env_for_dataset
from offreg.errors import EnvironmentError_
from offreg.evaluation import evaluate

# maze -> (rows, cols, start cell, goal cell, time limit), from D4RL's *_MAZE_TEST maps and registrations
D4RL_MAZES = {
    "umaze": (5, 5, (1, 1), (3, 1), 700),
    "medium": (8, 8, (1, 1), (6, 6), 1000),
    "large": (9, 12, (1, 1), (7, 9), 1000),
}
UMAZE_FILE = "Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5"  # antmaze-umaze-v2


def d4rl_observation(data: mujoco.MjData) -> np.ndarray:
    """``AntEnv._get_obs`` with ``expose_all_qpos=True``."""
    return np.concatenate([data.qpos.flat[:15], data.qvel.flat[:14]])


def world_xy(cell: tuple[int, int], start: tuple[int, int]) -> np.ndarray:
    """``MazeEnv._rowcol_to_xy``: x from the column, y from the row, the start cell at the origin."""
    return 4.0 * np.array([cell[1] - start[1], cell[0] - start[0]], float)


def test_spaces_dt_and_time_limits():
    for maze, (*_, limit) in D4RL_MAZES.items():
        env = make_env(f"antmaze-{maze}")
        inner = env.unwrapped
        assert env.observation_space.shape == (29,) and env.action_space.shape == (8,)
        assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
        assert inner.dt == pytest.approx(0.1) and inner.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
        assert np.all(inner.model.actuator_ctrlrange == [-30, 30]) and np.all(inner.model.actuator_gear[:, 0] == 1)
        assert (inner.model.nq, inner.model.nv) == (15, 14)
        assert env._max_episode_steps == limit
    env = make_env("antmaze-umaze")
    env.reset(seed=0)
    zero = np.zeros(8)
    for t in range(700):
        _, reward, terminated, truncated, _ = env.step(zero)
        assert reward == 0.0 and not terminated and truncated == (t == 699)


def test_observation_and_action_follow_d4rl():
    env = AntMazeEnv("medium")
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, d4rl_observation(env.data))
    rng = np.random.default_rng(0)
    for a in [np.full(8, -2.0), np.full(8, 2.0), rng.uniform(-1, 1, 8), np.linspace(-1, 1, 8)]:
        obs, *_ = env.step(a)
        np.testing.assert_array_equal(obs, d4rl_observation(env.data))
        np.testing.assert_allclose(env.data.ctrl, np.clip(30.0 * a, -30, 30), atol=1e-12)  # NormalizedBoxEnv


def test_reset_noise_start_cell_and_seeding():
    env = AntMazeEnv("large")
    qpos0 = np.array([0, 0, 0.75, 1, 0, 0, 0] + [0] * 8, float)  # gym's MujocoEnv: the model's qpos0
    qpos, qvel = [], []
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        qpos.append(obs[:15] - qpos0)
        qvel.append(obs[15:])
    qpos, qvel = np.array(qpos), np.array(qvel)
    assert np.all(np.abs(qpos) <= 0.1) and qpos.std() == pytest.approx(0.2 / np.sqrt(12), rel=0.1)  # U(-.1, .1)
    assert qvel.mean() == pytest.approx(0.0, abs=0.01) and qvel.std() == pytest.approx(0.1, rel=0.1)  # 0.1 N(0, 1)
    np.testing.assert_array_equal(AntMazeEnv("large").reset(seed=7)[0], env.reset(seed=7)[0])
    # the start is the 'r' cell: the origin of the world frame
    assert np.all(np.abs(qpos[:, :2]) <= 0.1)


@pytest.mark.parametrize("maze", list(D4RL_MAZES))
def test_walls_are_where_the_map_says(maze):
    rows, cols, start, goal, _ = D4RL_MAZES[maze]
    env = AntMazeEnv(maze)
    m, d = env.model, env.data
    mujoco.mj_forward(m, d)
    floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    torso_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "torso")
    walls = 0
    for i in range(rows):
        for j in range(cols):
            x, y = world_xy((i, j), start)
            geomid = np.zeros(1, np.int32)
            origin = np.array([x + 1.5, y + 1.5, 5.0])  # inside the cell, off the ant's legs
            dist = mujoco.mj_ray(m, d, origin, np.array([0, 0, -1.0]), None, 1, torso_body, geomid)
            wall = geomid[0] != floor and m.geom_bodyid[geomid[0]] == 0
            assert wall == (MAZES[maze][i][j] == "#"), (i, j)
            if i in (0, rows - 1) or j in (0, cols - 1):
                assert wall, (i, j)  # every map is walled in
            if wall:
                walls += 1
                assert dist == pytest.approx(5.0 - 2.0)  # walls are 0.5 * 4 = 2 high
                np.testing.assert_allclose(m.geom_size[geomid[0]], [2.0, 2.0, 1.0])
            else:
                assert geomid[0] == floor and dist == pytest.approx(5.0)
    assert walls == m.ngeom - 1 - 1 - 12  # floor, torso, 12 leg capsules: every other geom is a wall cell
    # the start and goal cells are free
    for cell in (start, goal):
        x, y = world_xy(cell, start)
        geomid = np.zeros(1, np.int32)
        mujoco.mj_ray(m, d, np.array([x + 1.5, y - 1.5, 5.0]), np.array([0, 0, -1.0]), None, 1, torso_body, geomid)
        assert geomid[0] == floor


@pytest.mark.parametrize("maze", list(D4RL_MAZES))
def test_goal_is_the_goal_cell_plus_d4rl_noise(maze):
    *_, start, goal, _ = D4RL_MAZES[maze]
    centre = world_xy(goal, start)
    env = AntMazeEnv(maze)  # v2: a new goal at every reset
    goals = np.array([env.reset(seed=s)[1]["goal"] for s in range(100)])
    offset = goals - centre
    assert np.all(offset >= 0) and np.all(offset <= 1.5)  # U(0, 0.25 * 4) + U(0, 0.5) * 0.25 * 4, each >= 0
    assert offset.mean() == pytest.approx(0.75, abs=0.1) and len(np.unique(goals[:, 0])) == 100
    fixed = AntMazeEnv(maze, v2_resets=False)  # v0/v1: the first reset's goal stays
    first = fixed.reset(seed=0)[1]["goal"]
    np.testing.assert_array_equal(fixed.reset(seed=1)[1]["goal"], first)


def _place_torso(env: AntMazeEnv, xy: np.ndarray) -> None:
    qpos = env.data.qpos.copy()
    qpos[:2] = xy
    env.set_state(qpos, np.zeros(env.model.nv))


def test_sparse_reward_success_radius_and_termination():
    env = AntMazeEnv("umaze")
    env.reset(seed=0)
    goal = env.goal
    for dx, inside in [(0.0, True), (0.49, True), (0.51, False), (3.0, False)]:  # radius 0.5, pinned
        _place_torso(env, goal + [dx, 0.0])
        assert env.at_goal() == inside
    _place_torso(env, goal)
    _, reward, terminated, _, info = env.step(np.zeros(8))
    assert (reward, terminated, info["success"]) == (1.0, True, True)  # eval=True: the episode ends there
    _place_torso(env, goal + [2.0, 0.0])
    _, reward, terminated, _, info = env.step(np.zeros(8))
    assert (reward, terminated, info["success"]) == (0.0, False, False)


class _ZeroAgent:
    def act(self, observations):
        return np.zeros((*np.shape(observations)[:-1], 8), np.float32)


def test_normalized_score_is_100_at_the_goal_and_0_away(monkeypatch):
    from offreg.data.core import DatasetInfo

    e = CATALOGUE["antmaze-umaze-v2"]
    target = DatasetInfo(e.name, "d4rl", e.env_id, 29, 8, 1, ref_min_score=e.ref_min_score,
                         ref_max_score=e.ref_max_score, max_episode_steps=e.max_episode_steps)
    away = evaluate(_ZeroAgent(), target, episodes=2, max_episode_steps=20)
    assert away.returns.tolist() == [0.0, 0.0] and away.mean_score == 0.0 and away.lengths.tolist() == [20, 20]
    monkeypatch.setattr(AntMazeEnv, "sample_goal", lambda self: np.zeros(2))  # the goal on the start
    there = evaluate(_ZeroAgent(), target, episodes=2, max_episode_steps=20)
    assert there.returns.tolist() == [1.0, 1.0] and there.lengths.tolist() == [1, 1]
    assert there.normalized.tolist() == [100.0, 100.0] and there.mean_score == 100.0


def test_catalogue_maps_every_d4rl_antmaze_name_to_its_maze():
    mazes = {"umaze": "umaze", "umaze-diverse": "umaze", "medium-play": "medium", "medium-diverse": "medium",
             "large-play": "large", "large-diverse": "large"}
    for kind, maze in mazes.items():
        for version in ("v0", "v1", "v2"):
            e = CATALOGUE[f"antmaze-{kind}-{version}"]
            assert e.env_id == env_for_dataset(e.name) == f"antmaze-{maze}"
            assert e.max_episode_steps == D4RL_MAZES[maze][4] == make_env(e.env_id)._max_episode_steps


def test_gymnasium_robotics_antmaze_is_another_world_and_is_refused(tmp_path):
    gr = pytest.importorskip("gymnasium_robotics")
    import gymnasium as gym

    gym.register_envs(gr)
    ours = AntMazeEnv("umaze")
    ours.reset(seed=0)
    for version, obs_dim in (("v4", 27), ("v5", 105)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(f"AntMaze_UMaze-{version}")
        obs, _ = env.reset(seed=0)
        u = env.unwrapped
        assert isinstance(obs, dict) and obs["observation"].shape == (obs_dim,) != (29,)  # no torso (x, y)
        # success radius 0.45, not 0.5
        assert not u.compute_terminated(np.array([0.47, 0.0]), np.zeros(2), {})
        _place_torso(ours, ours.goal + [0.47, 0.0])
        assert ours.at_goal()
        # maze frame: centred on the map, y down the rows; D4RL: start cell at the origin, y up the rows
        np.testing.assert_array_equal(u.maze.cell_rowcol_to_xy(np.array([1, 1])), [-4.0, 4.0])
        np.testing.assert_array_equal(u.maze.cell_rowcol_to_xy(np.array([3, 1])), [-4.0, -4.0])
        np.testing.assert_array_equal(world_xy((3, 1), (1, 1)), [0.0, 8.0])
        # the ant: Gymnasium's (gear 150, controls in [-1, 1], 0.05 s steps), not D4RL's
        ant = u.ant_env.unwrapped
        assert ant.model.actuator_gear[0, 0] == 150 and ant.dt == pytest.approx(0.05) != ours.dt
    # a D4RL AntMaze dataset paired with it is refused, naming the Minari dataset recorded there
    path = tmp_path / UMAZE_FILE
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((3, 29), np.float32)
    for source in (path, "antmaze-umaze-v2"):
        with pytest.raises(EnvironmentError_) as err:
            offreg.load_dataset(source, env="AntMaze_UMaze-v4", download=False)
        msg = str(err.value)
        assert "\n" not in msg and "'D4RL/antmaze/umaze-v1'" not in msg
        assert "D4RL/antmaze/umaze-v1" in msg and "'antmaze-umaze'" in msg and "0.45" in msg
    with pytest.raises(EnvironmentError_, match="D4RL/antmaze/large-play-v1 or D4RL/antmaze/large-diverse-v1"):
        offreg.load_dataset(tmp_path / "mine.hdf5", env="AntMaze_Large_Diverse_GR-v4")


@pytest.fixture(scope="module")
def umaze_file(tmp_path_factory):
    from offreg.data.generate.antmaze import write_antmaze_hdf5

    return write_antmaze_hdf5(tmp_path_factory.mktemp("antmaze") / UMAZE_FILE, "umaze", steps=1200, episode_steps=400)


def test_generated_file_has_d4rl_layout_and_relabelled_rewards(umaze_file, monkeypatch, tmp_path):
    from offreg.data.generate.antmaze import antmaze_arrays

    with h5py.File(umaze_file) as f:
        keys = sorted(k for k in f if k != "metadata") + sorted(f"infos/{k}" for k in f["infos"])
        arrays = {k: f[k][()] for k in keys if k != "infos"}
    assert keys == ["actions", "infos", "observations", "rewards", "terminals", "timeouts",
                    "infos/goal", "infos/qpos", "infos/qvel"]
    assert arrays["observations"].shape == (1200, 29) and arrays["observations"].dtype == np.float32
    assert arrays["terminals"].dtype == bool and np.flatnonzero(arrays["timeouts"]).tolist() == [399, 799, 1199]
    # infos/qpos, infos/qvel are the state after the step: the next row's observation within an episode
    after = np.concatenate([arrays["infos/qpos"], arrays["infos/qvel"]], axis=1)
    inside = ~arrays["timeouts"][:-1]
    np.testing.assert_array_equal(after[:-1][inside], arrays["observations"][1:][inside])
    # goal-at-the-start data so that some rewards are 1: reward = terminal = ||next xy - goal|| <= 0.5
    monkeypatch.setattr(AntMazeEnv, "sample_goal", lambda self: np.array([0.3, 0.0]))
    data = antmaze_arrays("umaze", steps=300, episode_steps=100)
    expected = np.linalg.norm(data["infos/qpos"][:, :2] - data["infos/goal"], axis=1) <= 0.5
    assert 0 < expected.sum() < 300
    np.testing.assert_array_equal(data["rewards"], expected.astype(np.float32))
    np.testing.assert_array_equal(data["terminals"], expected)


def test_generated_file_loads_into_its_maze(umaze_file, tmp_path):
    ds = offreg.load_dataset(umaze_file)  # named like D4RL's antmaze-umaze-v2 download
    assert (ds.info.env_id, ds.info.max_episode_steps, ds.info.obs_dim) == ("antmaze-umaze", 700, 29)
    assert offreg.load_dataset(umaze_file, env="antmaze").info.env_id == "antmaze-umaze"
    other = tmp_path / "mine.hdf5"
    other.write_bytes(umaze_file.read_bytes())
    info = offreg.load_dataset(other, env="antmaze-medium").info
    assert (info.env_id, info.max_episode_steps, info.ref_min_score, info.ref_max_score) == (
        "antmaze-medium", 1000, 0.0, 1.0)
    assert offreg.load_dataset(other, env="antmaze").info.env_id is None  # which maze is unknown


def test_cli_train_evaluates_on_the_port(umaze_file, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--agent", "td3bc", "--dataset", str(umaze_file), "--steps", "200", "--eval-every", "200",
                 "--eval-episodes", "2", "--set", "actor_hidden_dims=[16]", "--set", "critic_hidden_dims=[16]",
                 "--set", "batch_size=32", "--out", str(run), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "final normalized score: 0.0" in out
    assert json.loads((run / "dataset_info.json").read_text())["env_id"] == "antmaze-umaze"
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line)["kind"] == "eval"]
    assert record["returns"] == [0.0, 0.0] and record["score_mean"] == 0.0  # 100 * (return - 0) / (1 - 0)
    assert record["length_mean"] == 700  # D4RL's umaze time limit
