"""Minari datasets written by the ``minari`` package's own DataCollector, loaded through offreg."""

import json

import gymnasium as gym
import minari
import numpy as np
import pytest

from offreg.data import catalogue_rows, dataset_summary, load_dataset
from offreg.errors import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:`eval_env` is set to None")


def _collect(dataset_id, **create_kwargs):
    """Hopper-v5 with random actions and a 25-step limit: episodes end in terminations and truncations.

    Every step the environment takes is recorded here, independently of Minari's files.
    """
    env = minari.DataCollector(gym.make("Hopper-v5", max_episode_steps=25), record_infos=False)
    env.action_space.seed(0)
    steps = []  # (obs, action, reward, next_obs, terminated, truncated, episode)
    for ep in range(8):
        obs, _ = env.reset(seed=ep)
        while True:
            action = env.action_space.sample()
            nxt, reward, term, trunc, _ = env.step(action)
            steps.append((obs, action, reward, nxt, term, trunc, ep))
            obs = nxt
            if term or trunc:
                break
    env.create_dataset(
        dataset_id=dataset_id, algorithm_name="random", code_permalink="https://example.org",
        author="offreg tests", author_email="tests@example.org", description="random Hopper-v5 steps",
        **create_kwargs,
    )
    env.close()
    return steps


@pytest.fixture
def minari_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    return _collect("test/hopper/random-v0")


def test_minari_transitions_and_episodes(minari_dataset):
    steps = minari_dataset
    ds = load_dataset("minari/test/hopper/random-v0")
    t = {k: np.asarray(getattr(ds.transitions, k)) for k in
         ("observations", "actions", "rewards", "next_observations", "terminals")}
    np.testing.assert_allclose(t["observations"], np.array([s[0] for s in steps], np.float32), rtol=1e-6)
    np.testing.assert_allclose(t["actions"], np.array([s[1] for s in steps], np.float32))
    np.testing.assert_allclose(t["rewards"], np.array([s[2] for s in steps], np.float32), rtol=1e-6)
    np.testing.assert_allclose(t["next_observations"], np.array([s[3] for s in steps], np.float32), rtol=1e-6)
    # terminations stop bootstrapping, truncations do not; no row is dropped
    np.testing.assert_array_equal(t["terminals"], np.array([s[4] for s in steps], np.float32))
    terms = sum(s[4] for s in steps)
    truncs = sum(s[5] for s in steps)
    assert terms > 0 and truncs > 0 and len(ds) == len(steps)
    ep = np.array([s[6] for s in steps])
    np.testing.assert_array_equal(ds.episode_lengths, np.bincount(ep))
    np.testing.assert_allclose(
        ds.episode_returns, [sum(float(s[2]) for s in steps if s[6] == k) for k in range(8)], rtol=1e-9
    )
    np.testing.assert_array_equal(ds.episode_starts, np.concatenate([[0], np.cumsum(np.bincount(ep))[:-1]]))
    assert ds.info.source == "minari" and ds.info.obs_dim == 11 and ds.info.act_dim == 3
    assert ds.info.max_episode_steps == 25 and ds.info.extra["gymnasium_env_id"] == "Hopper-v5"
    # no reference scores in the metadata: none invented
    assert ds.info.ref_min_score is None
    with pytest.raises(DatasetError, match="no reference scores"):
        ds.info.normalized_score(1.0)


def test_minari_reference_scores_from_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    _collect("test/hopper/scored-v0", ref_min_score=-5.0, ref_max_score=45.0)
    ds = load_dataset("minari/test/hopper/scored-v0")
    assert (ds.info.ref_min_score, ds.info.ref_max_score) == (-5.0, 45.0)
    returns = np.array([3.0, 20.0, 44.0])
    expected = minari.get_normalized_score(minari.load_dataset("test/hopper/scored-v0"), returns) * 100
    np.testing.assert_allclose(ds.info.normalized_score(returns), expected)
    meta = json.loads((tmp_path / "minari/test/hopper/scored-v0/data/metadata.json").read_text())
    assert ds.info.extra["minari_version"] == meta["minari_version"]


def test_minari_listing_and_summary(minari_dataset):
    rows = [r for r in catalogue_rows() if r["source"] == "minari" and r["status"] == "local"]
    assert [(r["name"], r["env"], r["rows"]) for r in rows] == [
        ("minari/test/hopper/random-v0", "Hopper-v5", len(minari_dataset))
    ]
    s = dataset_summary("minari/test/hopper/random-v0")
    returns = np.array([sum(float(x[2]) for x in minari_dataset if x[6] == k) for k in range(8)])
    assert s["episodes"] == 8 and s["transitions"] == len(minari_dataset)
    assert s["return_mean"] == pytest.approx(returns.mean()) and s["return_max"] == pytest.approx(returns.max())


def test_missing_minari_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(DatasetError, match="minari download mujoco/hopper/medium-v0.*MINARI_DATASETS_PATH"):
        load_dataset("minari/mujoco/hopper/medium-v0")
