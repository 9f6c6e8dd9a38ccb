"""Core contracts: sampling, preprocessing and config round trips."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offreg.agents.base import AgentConfig
from offreg.data import DatasetInfo, from_arrays, sample
from offreg.data.core import normalize
from offreg.errors import ConfigError, DatasetError, UnknownNameError


def _dataset(n=50, obs_dim=3, act_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    info = DatasetInfo("toy", "file", None, obs_dim, act_dim, n, ref_min_score=-10.0, ref_max_score=90.0)
    obs = rng.normal(size=(n, obs_dim)) * 3 + 1
    return from_arrays(
        obs, rng.uniform(-1, 1, (n, act_dim)), rng.normal(size=n), obs + 0.1, np.zeros(n), info,
        episode_starts=[0, 25], episode_returns=[1.0, 5.0], episode_lengths=[25, 25],
    )


def test_sample_is_uniform_rows_and_jittable():
    ds = _dataset()
    batch = jax.jit(sample, static_argnums=2)(ds.transitions, jax.random.PRNGKey(0), 4096)
    obs = np.asarray(ds.transitions.observations)
    # every sampled row is a dataset row, with its own action
    rows = [int(np.argmin(np.abs(obs - o).sum(1))) for o in np.asarray(batch.observations)[:200]]
    np.testing.assert_allclose(np.asarray(batch.actions)[:200], np.asarray(ds.transitions.actions)[rows])
    counts = np.bincount(rows, minlength=len(ds))
    assert counts.min() >= 0 and counts.max() < 20  # roughly uniform over 50 rows
    full = np.bincount(
        [int(np.argmin(np.abs(obs - o).sum(1))) for o in np.asarray(batch.observations)], minlength=len(ds)
    )
    assert abs(full.mean() - 4096 / 50) < 1e-9 and full.std() < 20


def test_normalize_observations_matches_numpy():
    ds = _dataset()
    raw = np.asarray(ds.transitions.observations, np.float64)
    nds = ds.normalize_observations(1e-3)
    expected = (raw - raw.mean(0)) / (raw.std(0) + 1e-3)
    np.testing.assert_allclose(np.asarray(nds.transitions.observations), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(nds.transitions.next_observations), (raw + 0.1 - raw.mean(0)) / (raw.std(0) + 1e-3),
        rtol=1e-5, atol=1e-5,
    )
    np.testing.assert_allclose(nds.info.normalize_observations(raw), expected, rtol=1e-5, atol=1e-5)
    assert nds.normalize_observations() is nds


def test_observation_stats_are_what_the_normalization_applied():
    ds = _dataset()
    mean, std = ds.info.observation_stats()  # off: the identity
    assert mean.dtype == std.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(mean), np.zeros(3))
    np.testing.assert_array_equal(np.asarray(std), np.ones(3))
    nds = ds.normalize_observations(1e-3)
    raw = np.asarray(ds.transitions.observations)
    mean, std = nds.info.observation_stats()
    np.testing.assert_array_equal(np.asarray(mean), np.float32(raw.astype(np.float64).mean(0)))
    # bit for bit what the loader applied to the transitions
    np.testing.assert_array_equal(np.asarray(normalize(jnp.asarray(raw), mean, std)),
                                  np.asarray(nds.transitions.observations))


@pytest.mark.parametrize("name", ["bc", "td3bc", "odice"])
def test_every_agent_acts_on_the_shared_normalization(name):
    import offreg

    nds = _dataset().normalize_observations(1e-3)
    agent = offreg.make_agent(name, nds, seed=0, normalize_observations=True)
    raw = np.asarray(_dataset().transitions.observations[:4])
    mean, std = nds.info.observation_stats()
    np.testing.assert_array_equal(np.asarray(agent.obs_mean), np.asarray(mean))
    np.testing.assert_array_equal(np.asarray(agent.obs_std), np.asarray(std))
    # acting on raw observations equals acting on the normalized ones with the identity normalization
    identity = agent.replace(obs_mean=jnp.zeros_like(mean), obs_std=jnp.ones_like(std))
    np.testing.assert_array_equal(np.asarray(agent.act(raw)), np.asarray(identity.act(normalize(raw, mean, std))))


def test_locomotion_reward_scaling_and_info_round_trip():
    ds = _dataset().transform_rewards("locomotion")
    assert ds.info.reward_scale == pytest.approx(1000.0 / 4.0)
    np.testing.assert_allclose(
        np.asarray(ds.transitions.rewards), np.asarray(_dataset().transitions.rewards) * 250.0, rtol=1e-6
    )
    assert DatasetInfo.from_dict(ds.info.to_dict()) == ds.info
    with pytest.raises(ConfigError):
        ds.transform_rewards("affine", 2.0)


def test_normalized_score():
    info = _dataset().info
    assert info.normalized_score(40.0) == pytest.approx(50.0)
    with pytest.raises(DatasetError, match="no reference scores"):
        dataclasses.replace(info, ref_min_score=None).normalized_score(1.0)


def test_from_arrays_rejects_bad_input():
    info = DatasetInfo("bad", "file", None, 3, 2, 0)
    good = dict(observations=np.zeros((4, 3)), actions=np.zeros((4, 2)), rewards=np.zeros(4),
                next_observations=np.zeros((4, 3)), terminals=np.zeros(4))
    with pytest.raises(DatasetError, match="NaN"):
        from_arrays(**{**good, "rewards": np.array([0, np.nan, 0, 0])}, info=info)
    with pytest.raises(DatasetError, match="same length"):
        from_arrays(**{**good, "actions": np.zeros((3, 2))}, info=info)
    with pytest.raises(DatasetError, match="no transitions"):
        from_arrays(**{k: v[:0] for k, v in good.items()}, info=info)
    with pytest.raises(DatasetError, match="expected"):
        from_arrays(**{**good, "observations": np.zeros((4, 5))}, info=info)


@dataclasses.dataclass(frozen=True)
class _Cfg(AgentConfig):
    sweepable = ("alpha",)
    alpha: float = 2.5
    hidden_dims: tuple[int, ...] = (256, 256)


def test_config_json_round_trip_and_errors():
    c = _Cfg(alpha=1.0, hidden_dims=(8, 8))
    assert _Cfg.from_dict(__import__("json").loads(c.to_json())) == c
    assert c.replace(alpha="3") == _Cfg(alpha=3.0, hidden_dims=(8, 8))
    with pytest.raises(UnknownNameError, match="alpha"):
        _Cfg.from_dict({"alhpa": 1.0})
    with pytest.raises(ConfigError, match="alpha"):
        c.replace(alpha="abc")
    with pytest.raises(ConfigError, match="batch_size"):
        _Cfg(batch_size=0)
    assert jnp.asarray(1).dtype  # jax importable
