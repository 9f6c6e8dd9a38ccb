"""The contract every registered agent meets (run over ``registry()``, so new agents are covered).

create on a small synthetic dataset, a few jitted updates in the engine's scan, finite metrics and
parameters, ``act`` shape/range/determinism on raw observations, config JSON round trip, and a
checkpoint save/load round trip with bit-identical actions.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offreg.agents.base import is_gradient_free
from offreg.agents.names import registry
from offreg.agents.presets import load_presets, resolve_config
from offreg.checkpoint import load_agent, save_agent
from offreg.data import DatasetInfo, from_arrays
from offreg.engine import dataset_context, scan_updates

OBS, ACT, N, EP = 3, 2, 200, 50


def _dataset():
    """Four 50-step episodes of a noisy linear system; episodes 1 and 3 end in a terminal."""
    rng = np.random.default_rng(0)
    obs = np.cumsum(rng.normal(size=(N, OBS)) * 0.3, axis=0) + 2.0
    actions = np.tanh(rng.normal(size=(N, ACT)))
    rewards = obs[:, 0] - 0.1 * (actions**2).sum(1)
    next_obs = obs + 0.1 * np.concatenate([actions, actions[:, :1]], 1)
    terminals = np.zeros(N)
    terminals[[EP - 1, 3 * EP - 1]] = 1.0
    starts = np.arange(0, N, EP)
    info = DatasetInfo("contract-toy", "file", None, OBS, ACT, N, ref_min_score=0.0, ref_max_score=100.0,
                       max_episode_steps=EP)
    return from_arrays(obs, actions, rewards, next_obs, terminals, info, episode_starts=starts,
                       episode_returns=[rewards[s:s + EP].sum() for s in starts], episode_lengths=[EP] * 4)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Per agent name: (spec, raw dataset, prepared dataset, agent, scan_updates output of 3 steps or None)."""
    cache = {}

    def build(name):
        if name not in cache:
            spec = registry()[name]
            envs = getattr(spec.agent_cls, "requires_env", ())
            if envs:  # agents tied to an environment train on that environment's offreg dataset
                from offreg.data.loader import load_dataset

                with pytest.MonkeyPatch.context() as mp:
                    mp.setenv("OFFREG_DATA_DIR", str(tmp_path_factory.mktemp("data")))
                    dataset = load_dataset(f"offreg/{envs[0]}-v0")
            else:
                dataset = _dataset()
            config = spec.default_config().replace(batch_size=32)
            prepared = config.prepare(dataset)
            context = dataset_context(spec.agent_cls, config, prepared)
            agent = spec.agent_cls.create(config, prepared, jax.random.PRNGKey(0), context)
            trained = None
            if not is_gradient_free(spec.agent_cls):
                run = jax.jit(scan_updates, static_argnums=3)
                trained = run(agent, prepared.transitions, jax.random.PRNGKey(1), 3, context)
            cache[name] = (spec, dataset, prepared, agent, trained)
        return cache[name]

    return build


@pytest.mark.parametrize("name", sorted(registry()))
def test_agent_contract(name, built):
    spec, dataset, prepared, agent, trained = built(name)
    config, act_dim = agent.config, dataset.info.act_dim
    assert config == spec.default_config().replace(batch_size=32)
    # --- config JSON round trip
    assert spec.config_from_dict(json.loads(config.to_json())) == config
    assert type(config).from_dict(json.loads(config.to_json())) == config  # nested parts round-trip alone

    # --- updates in the engine's scan, jitted
    if not is_gradient_free(spec.agent_cls):
        trained, _, metrics = trained
        assert metrics, f"{name} reports no metrics"
        for k, v in metrics.items():
            assert np.asarray(v).shape[0] == 3, f"{name} metric {k} is not stacked per step"
            assert np.all(np.isfinite(np.asarray(v))), f"{name} metric {k} is not finite: {v}"
        for leaf in jax.tree_util.tree_leaves(trained):
            if jnp.issubdtype(leaf.dtype, jnp.inexact):
                assert np.all(np.isfinite(np.asarray(leaf))), f"{name} has non-finite state"
        changed = [not np.array_equal(np.asarray(a), np.asarray(b))
                   for a, b in zip(jax.tree_util.tree_leaves(agent), jax.tree_util.tree_leaves(trained), strict=True)]
        assert any(changed), f"{name}: three updates changed nothing"
        agent = trained

    # --- act: raw observations in, bounded deterministic actions out
    raw = np.asarray(dataset.transitions.observations[:7])
    actions = np.asarray(agent.act(jnp.asarray(raw)))
    if np.issubdtype(actions.dtype, np.integer):  # discrete-action agents (R2PVI's environments): indices [B]
        assert actions.shape == (7,) and actions.min() >= 0
    else:
        assert actions.shape == (7, act_dim) and actions.dtype == np.float32
        assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= getattr(config, "max_action", 1.0) + 1e-6)
    np.testing.assert_array_equal(actions, np.asarray(agent.act(jnp.asarray(raw))))
    np.testing.assert_allclose(np.asarray(jax.jit(lambda a, o: a.act(o))(agent, raw)), actions, atol=1e-6)


@pytest.mark.parametrize("name", sorted(registry()))
def test_checkpoint_round_trip(name, built, tmp_path):
    """save_agent/load_agent give the same class and config and bit-identical actions and state."""
    spec, dataset, prepared, agent, trained = built(name)
    config = agent.config
    if trained is not None:  # non-trivial optimizer state and targets
        agent = trained[0]
    raw = jnp.asarray(dataset.transitions.observations[:7])
    path = save_agent(agent, tmp_path / "agent.msgpack", dataset_info=prepared.info)
    loaded = load_agent(path)
    assert type(loaded) is spec.agent_cls and loaded.config == config
    np.testing.assert_array_equal(np.asarray(loaded.act(raw)), np.asarray(agent.act(raw)))
    for a, b in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(agent), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", sorted(registry()))
def test_presets_resolve(name):
    """The agent's packaged per-dataset presets (offreg/configs/<name>.json) give valid configs."""
    presets = load_presets(name)
    spec = registry()[name]
    base = resolve_config(name, None, {})
    assert isinstance(base, spec.config_cls)
    for k, v in presets["defaults"].items():
        assert getattr(base, k) == (tuple(v) if isinstance(v, list) else v), f"{name}: default {k} not applied"
    for entry in presets["datasets"]:
        config = base.replace(**entry["values"])
        for k, v in entry["values"].items():
            assert getattr(config, k) == (tuple(v) if isinstance(v, list) else v)
