"""Minari datasets evaluate in the environment they record, written offline with Minari's own DataCollector.

The independent side of every check is Minari itself: ``minari.load_dataset(...)`` for the arrays and
``recover_environment()`` (Minari's rebuild of the recorded spec) for the rollouts.
"""

import csv
import json
import shutil
import sys

import minari
import numpy as np
import pytest

from offreg import cli
from offreg.data import catalogue_rows, download_dataset, load_dataset
from offreg.data.catalogue import MINARI_CATALOGUE, resolve
from offreg.data.generate.minari_data import write_minari_dataset
from offreg.envs import make_env
from offreg.errors import DatasetError, DownloadError, EnvironmentError_
from offreg.evaluation import evaluate
from offreg.leaderboard.report import write_report
from offreg.leaderboard.results import job_id, make_result, write_result

pytestmark = pytest.mark.filterwarnings("ignore:`eval_env` is set to None", "ignore::UserWarning")

ANTMAZE_KEYS = ("achieved_goal", "desired_goal", "observation")  # the documented order, written out


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    return tmp_path / "minari"


class Linear:
    """A fixed deterministic numpy policy ``clip(tanh(W obs))``: no JAX, no training."""

    def __init__(self, obs_dim, act_dim, seed=0):
        self.w = np.random.default_rng(seed).normal(0, 0.3, (obs_dim, act_dim))

    def act(self, obs):
        return np.tanh(np.asarray(obs, np.float64) @ self.w).astype(np.float32)


class GoTo:
    """Point Maze: push toward ``desired_goal`` from ``achieved_goal`` (flat layout [0:2], [2:4], velocity [6:8])."""

    def act(self, obs):
        obs = np.asarray(obs, np.float64)
        return np.clip(5 * (obs[:, 2:4] - obs[:, 0:2]) - obs[:, 6:8], -1, 1).astype(np.float32)


def _flat(obs):
    return np.concatenate([obs[k] for k in ANTMAZE_KEYS], -1) if isinstance(obs, dict) else obs


def _recorded_rollouts(dataset_id, agent, seed, episodes):
    """Step Minari's own rebuild of the recorded environment: returns and per-episode success."""
    env = minari.load_dataset(dataset_id).recover_environment(eval_env=True)
    low, high = env.action_space.low, env.action_space.high
    returns, success = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, won = 0.0, False
        while True:
            action = np.clip(agent.act(_flat(obs)[None].astype(np.float32))[0], low, high)
            obs, r, term, trunc, info = env.step(action)
            total += float(r)
            won = won or bool(info.get("success", False))
            if term or trunc:
                break
        returns.append(total)
        success.append(won)
    env.close()
    return np.array(returns), np.array(success)


def _minari_arrays(dataset_id):
    obs, nxt, act, term = [], [], [], []
    for ep in minari.load_dataset(dataset_id).iterate_episodes():
        o = _flat(ep.observations) if not isinstance(ep.observations, dict) else np.concatenate(
            [ep.observations[k] for k in ANTMAZE_KEYS], -1)
        obs.append(o[:-1])
        nxt.append(o[1:])
        act.append(ep.actions)
        term.append(ep.terminations)
    return [np.concatenate(x) for x in (obs, nxt, act, term)]


@pytest.mark.parametrize("dataset_id, env_id, kwargs", [
    ("test/hopper/random-v0", "Hopper-v5", {}),  # the case: a Hopper-v5 DataCollector dataset
    ("test/door/random-v0", "AdroitHandDoor-v1", {"max_episode_steps": 20}),
])
def test_minari_dataset_evaluates_in_its_recorded_environment(root, dataset_id, env_id, kwargs):
    write_minari_dataset(dataset_id, env_id, episodes=5, **kwargs)
    ds = load_dataset(dataset_id)  # without the minari/ prefix: it is under MINARI_DATASETS_PATH
    assert ds.info.name == f"minari/{dataset_id}" and ds.info.env_id == f"gymnasium:{env_id}"
    obs, nxt, act, term = _minari_arrays(dataset_id)
    np.testing.assert_array_equal(np.asarray(ds.transitions.observations), obs.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(ds.transitions.next_observations), nxt.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(ds.transitions.actions), act.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(ds.transitions.terminals), term.astype(np.float32))

    agent = Linear(ds.info.obs_dim, ds.info.act_dim)
    res = evaluate(agent, ds, episodes=3, seed=7)
    expected, _ = _recorded_rollouts(dataset_id, agent, seed=7, episodes=3)
    np.testing.assert_allclose(res.returns, expected, rtol=1e-12)
    assert res.eval_path == "recorded-env" and res.versions["environment"] == env_id
    assert res.normalized is None  # no reference scores in the metadata: none invented
    if env_id == "Hopper-v5":  # the bare id: gymnasium.make with the id's registered defaults
        bare = evaluate(agent, "gymnasium:Hopper-v5", episodes=1, seed=7, max_episode_steps=1000)
        assert bare.returns[0] == expected[0] and bare.eval_path == "recorded-env"

    # the env id and its spec round-trip through the run directory's JSON (dataset_info.json, checkpoints)
    info = type(ds.info).from_dict(json.loads(ds.info.to_json()))
    np.testing.assert_allclose(evaluate(agent, info, episodes=3, seed=7).returns, expected, rtol=1e-12)


def test_dict_observations_flatten_in_sorted_key_order_in_data_and_env(root):
    write_minari_dataset("test/antmaze/umaze-v0", "AntMaze_UMaze-v5", episodes=2, max_episode_steps=30,
                         env_kwargs={"continuing_task": False}, ref_min_score=0.0, ref_max_score=1.0)
    ds = load_dataset("minari/test/antmaze/umaze-v0")
    first = minari.load_dataset("test/antmaze/umaze-v0")[0].observations
    layout = np.concatenate([first[k][0] for k in ANTMAZE_KEYS]).astype(np.float32)
    assert ds.info.obs_dim == 2 + 2 + 105
    np.testing.assert_array_equal(np.asarray(ds.transitions.observations[0]), layout)
    # the recorded env's flattened reset observation is the dataset's layout (episode 0 was reset with seed 0)
    env = make_env(ds.info.env_id, **ds.info.extra["env_kwargs"])
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs.astype(np.float32), layout)
    own = minari.load_dataset("test/antmaze/umaze-v0").recover_environment().reset(seed=3)[0]
    np.testing.assert_array_equal(env.reset(seed=3)[0], np.concatenate([own[k] for k in ANTMAZE_KEYS]))
    env.close()


def test_maze_normalized_score_is_100_times_success_rate(root):
    # AntMaze: random actions never reach a goal 2+ units away, so its rate is 0; Point Maze (the same
    # Gymnasium-Robotics MazeEnv reward and termination) with a goal-seeking policy gives a mixed rate.
    for dataset_id, env_id, steps, agent in (
        ("test/antmaze/umaze-v0", "AntMaze_UMaze-v5", 40, None),
        ("test/pointmaze/open-v0", "PointMaze_Open-v3", 60, GoTo()),
    ):
        write_minari_dataset(dataset_id, env_id, episodes=2, max_episode_steps=steps,
                             env_kwargs={"continuing_task": False}, ref_min_score=0.0, ref_max_score=1.0)
        ds = load_dataset(dataset_id)
        agent = agent or Linear(ds.info.obs_dim, ds.info.act_dim)
        res = evaluate(agent, ds, episodes=6, seed=0)
        returns, success = _recorded_rollouts(dataset_id, agent, seed=0, episodes=6)
        np.testing.assert_array_equal(res.returns, returns)
        np.testing.assert_array_equal(res.normalized, 100.0 * success)
        assert res.mean_score == pytest.approx(100.0 * success.mean())
        if env_id.startswith("Point"):
            assert 0 < success.mean() < 1


def test_missing_robotics_extra_is_a_one_line_error(root, monkeypatch):
    write_minari_dataset("test/antmaze/umaze-v0", "AntMaze_UMaze-v5", episodes=1, max_episode_steps=10)
    ds = load_dataset("test/antmaze/umaze-v0")
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # as if not installed
    with pytest.raises(EnvironmentError_, match=r'AntMaze_UMaze-v5.*pip install "offreg\[robotics\]"') as e:
        evaluate(Linear(ds.info.obs_dim, 8), ds, episodes=1)
    assert "\n" not in str(e.value)


def test_bare_minari_ids_and_ambiguity(root):
    write_minari_dataset("test/hopper/random-v0", "Hopper-v5", episodes=1)
    assert resolve("test/hopper/random-v0").name == "minari/test/hopper/random-v0"
    # a catalogue Minari id names nothing else: accepted bare, and missing says how to get it
    assert resolve("D4RL/door/human-v2").name == "minari/D4RL/door/human-v2"
    with pytest.raises(DatasetError, match=r"minari download D4RL/door/human-v2"):
        load_dataset("D4RL/door/human-v2")
    # a local Minari id that is also a D4RL name: both readings are named
    shutil.copytree(root / "test/hopper/random-v0", root / "hopper-medium-v2")
    with pytest.raises(DatasetError, match=r"ambiguous: D4RL's 'hopper-medium-v2' and the Minari dataset "
                                           r"'minari/hopper-medium-v2'.*'d4rl/hopper-medium-v2' or"):
        resolve("hopper-medium-v2")
    assert resolve("minari/hopper-medium-v2").kind == "minari" and resolve("d4rl/hopper-medium-v2").kind == "d4rl"


def test_catalogue_lists_minari_d4rl_names_and_downloads_through_minari(root, monkeypatch, capsys):
    rows = {r["name"]: r for r in catalogue_rows() if r["source"] == "minari"}
    mazes = ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
    expected = [f"minari/D4RL/antmaze/{m}-v1" for m in mazes] + [
        f"minari/D4RL/{t}/{k}-v2" for t in ("door", "pen", "hammer", "relocate") for k in ("human", "cloned", "expert")]
    assert sorted(rows) == sorted(expected) and len(MINARI_CATALOGUE) == 18
    assert rows["minari/D4RL/antmaze/large-play-v1"]["env"] == "AntMaze_Large"
    assert rows["minari/D4RL/pen/cloned-v2"]["env"] == "AdroitHandPen"
    assert {r["status"] for r in rows.values()} == {"downloadable"}

    calls = []

    def offline(dataset_id, force_download=False):
        calls.append(dataset_id)
        raise ConnectionError("network unreachable\nmore detail")

    monkeypatch.setattr(minari, "download_dataset", offline)
    with pytest.raises(DownloadError, match=r"minari download D4RL/door/human-v2.*MINARI_DATASETS_PATH") as e:
        download_dataset("minari/D4RL/door/human-v2")
    assert calls == ["D4RL/door/human-v2"] and "\n" not in str(e.value)
    assert cli.main(["datasets", "download", "D4RL/door/human-v2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot download Minari dataset 'D4RL/door/human-v2'")


def test_leaderboard_rows_say_which_evaluation_path(tmp_path):
    paths = {"hopper-medium-v2": "hopper", "minari/test/hopper/random-v0": "gymnasium:Hopper-v5", "x.hdf5": None}
    for dataset, env_id in paths.items():
        evals = [{"step": 10, "seed": 0, "returns": [1.0], "scores": None if env_id is None else [1.0]}]
        write_result(tmp_path / "results" / f"{job_id('bc', dataset)}.json", make_result(
            agent="bc", dataset=dataset, seeds=[0], steps=10, step=10, status="complete", evaluations=evals,
            dataset_info={"name": dataset, "env_id": env_id}))
    written = write_report(tmp_path, ["md", "csv"], out=tmp_path / "rep", reps=10)
    rows = {r["dataset"]: r["eval_path"] for r in csv.DictReader(written["leaderboard.csv"].open())}
    assert rows == {"hopper-medium-v2": "d4rl-env", "minari/test/hopper/random-v0": "recorded-env", "x.hdf5": ""}
    md = written["leaderboard.md"].read_text().split("## Every run")[1]
    assert "| evaluation path |" in md and "| recorded-env |" in md and "| d4rl-env |" in md


def test_train_cli_on_a_generated_minari_antmaze_reports_a_normalized_score(root, tmp_path, capsys):
    write_minari_dataset("test/antmaze/umaze-v0", "AntMaze_UMaze-v5", episodes=2, max_episode_steps=50,
                         env_kwargs={"continuing_task": False}, ref_min_score=0.0, ref_max_score=1.0)
    run = tmp_path / "run"
    code = cli.main(["train", "--agent", "td3bc", "--dataset", "test/antmaze/umaze-v0", "--steps", "200",
                     "--eval-every", "200", "--eval-episodes", "2", "--set", "actor_hidden_dims=[8]",
                     "--set", "critic_hidden_dims=[8]", "--set", "batch_size=16", "--out", str(run), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "final normalized score" in out
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["kind"] == "eval"]
    assert len(evals) == 1 and len(evals[0]["returns"]) == 2
    assert evals[0]["score_mean"] == pytest.approx(100 * np.mean(evals[0]["returns"]))
    info = json.loads((run / "dataset_info.json").read_text())
    assert info["env_id"] == "gymnasium:AntMaze_UMaze-v5" and info["extra"]["env_kwargs"]["spec"]["kwargs"][
        "continuing_task"] is False
