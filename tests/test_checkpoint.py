"""Checkpoints: exact round trips (optimizer state included), multi-seed files, atomic writes,
clear errors on missing or corrupt files."""

import functools
import os

import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import pytest

import offreg
from offreg.checkpoint import checkpoint_path, latest_checkpoint, read_checkpoint
from offreg.data import DatasetInfo, from_arrays, sample
from offreg.errors import CheckpointError
from offreg.seeds import index_seed, stack_seeds

TINY = dict(actor_hidden_dims="[8]", critic_hidden_dims="[8]", batch_size=16)


def _dataset(n=120, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 4)) * 2 + 1
    info = DatasetInfo("toy", "file", None, 4, 2, n, ref_min_score=-1.0, ref_max_score=3.0)
    return from_arrays(obs, rng.uniform(-0.9, 0.9, (n, 2)), rng.normal(size=n), obs + 0.1, np.zeros(n), info)


_UPDATE = jax.jit(lambda agent, batch, key: agent.update(batch, key))


@functools.cache
def _trajectory(seed):
    """A td3bc agent and the agents after 1, 2 and 3 updates (Adam moments, targets, step non-trivial)."""
    ds = _dataset()
    agent = offreg.make_agent("td3bc", ds, seed=seed, **TINY)
    prepared = agent.config.prepare(ds)
    key = jax.random.PRNGKey(100 + seed)
    agents = [agent]
    for _ in range(3):
        key, k1, k2 = jax.random.split(key, 3)
        agents.append(_UPDATE(agents[-1], sample(prepared.transitions, k1, 16), k2)[0])
    return agents, prepared


def _trained_agent(seed=0, updates=3):
    agents, prepared = _trajectory(seed)
    return agents[updates], prepared


def _assert_same(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_is_exact_including_optimizer_state(tmp_path):
    agent, prepared = _trained_agent()
    assert int(agent.step) == 3
    mu = agent.critic.opt_state[0].mu
    assert any(float(jnp.abs(x).max()) > 0 for x in jax.tree_util.tree_leaves(mu))  # non-trivial Adam state
    path = offreg.save_agent(agent, tmp_path / "agent", dataset_info=prepared.info, note="hello")
    assert path.name == "agent.msgpack" and path.exists()
    loaded = offreg.load_agent(path)
    assert type(loaded) is type(agent) and loaded.config == agent.config
    _assert_same(loaded, agent)
    obs = np.asarray(prepared.transitions.observations[:5]) * 3.0
    np.testing.assert_array_equal(np.asarray(loaded.act(obs)), np.asarray(agent.act(obs)))
    ckpt = read_checkpoint(path)
    assert ckpt.agent_name == "td3bc" and ckpt.step == 3 and ckpt.extra == {"note": "hello"}
    assert ckpt.dataset_info == prepared.info and ckpt.seeds is None and ckpt.key is None
    # the file is plain msgpack (no pickle): its header decodes without offreg
    raw = msgpack.unpackb(path.read_bytes(), strict_map_key=False, ext_hook=lambda code, data: None)
    assert set(raw) == {"meta", "state", "key"} and '"format": "offreg-agent"' in raw["meta"]


def test_multi_seed_checkpoint_selects_a_seed_and_keeps_keys(tmp_path):
    a3, prepared = _trained_agent(seed=3, updates=2)
    a5, _ = _trained_agent(seed=5, updates=2)
    stacked = stack_seeds([a3, a5])
    assert np.ndim(stacked.step) == 0  # the step counter is shared by the seeds
    keys = jnp.stack([jax.random.PRNGKey(7), jax.random.PRNGKey(8)])
    path = offreg.save_agent(stacked, tmp_path / "run.msgpack", dataset_info=prepared.info, step=2, key=keys,
                             seeds=[3, 5])
    _assert_same(offreg.load_agent(path, seed=5), a5)
    _assert_same(offreg.load_agent(path), a3)
    ckpt = read_checkpoint(path)
    _assert_same(index_seed(ckpt.agent, 1), a5)
    np.testing.assert_array_equal(np.asarray(ckpt.key), np.asarray(keys))
    assert ckpt.key.dtype == jnp.uint32 and ckpt.seeds == [3, 5]
    with pytest.raises(CheckpointError, match="no seed 4"):
        offreg.load_agent(path, seed=4)


def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    old, prepared = _trained_agent(updates=1)
    new, _ = _trained_agent(updates=2)
    path = offreg.save_agent(old, tmp_path / "a.msgpack", dataset_info=prepared.info)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        offreg.save_agent(new, path, dataset_info=prepared.info)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.msgpack"]  # no temporary file left
    monkeypatch.undo()
    _assert_same(offreg.load_agent(path), old)


def test_missing_and_corrupt_files_raise_checkpoint_error(tmp_path):
    agent, prepared = _trained_agent(updates=1)
    with pytest.raises(CheckpointError, match="does not exist"):
        offreg.load_agent(tmp_path / "nope.msgpack")
    path = offreg.save_agent(agent, tmp_path / "a.msgpack", dataset_info=prepared.info)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.msgpack"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        offreg.load_agent(truncated)
    garbage = tmp_path / "garbage.msgpack"
    garbage.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(CheckpointError):
        offreg.load_agent(garbage)
    foreign = tmp_path / "foreign.msgpack"
    foreign.write_bytes(msgpack.packb({"meta": '{"format": "something-else"}', "state": {}, "key": None}))
    with pytest.raises(CheckpointError, match="not an offreg agent checkpoint"):
        offreg.load_agent(foreign)
    for bad in (truncated, garbage, foreign):  # one-line messages that name the file
        with pytest.raises(CheckpointError) as e:
            offreg.load_agent(bad)
        assert "\n" not in str(e.value) and bad.name in str(e.value)


def test_run_directory_resolves_to_the_newest_checkpoint(tmp_path):
    a1, prepared = _trained_agent(updates=1)
    a2, _ = _trained_agent(updates=2)
    offreg.save_agent(a2, checkpoint_path(tmp_path, 20), dataset_info=prepared.info)
    offreg.save_agent(a1, checkpoint_path(tmp_path, 3), dataset_info=prepared.info)
    assert latest_checkpoint(tmp_path).name == "step_000000020.msgpack"
    _assert_same(offreg.load_agent(tmp_path), a2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        offreg.load_agent(tmp_path / "empty")


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from offreg.atomic import atomic_write

    path = tmp_path / "data.hdf5"
    path.write_bytes(b"old")

    def invalid(tmp):
        tmp.write_bytes(b"half")
        raise ValueError("validation failed")

    with pytest.raises(ValueError, match="validation failed"):
        atomic_write(path, invalid, suffix=".tmp.hdf5")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["data.hdf5"]
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("name", ["bc", "td3bc", "prdc", "a2pr", "odice"])
def test_saved_without_dataset_info_loads_and_acts_identically(tmp_path, name):
    """Issue 16 item 1: the file alone gives the template's dimensions (4-dim observations, 2-dim
    actions here, not the 1 x 1 of a bare template), so the loaded agent acts exactly as the saved one."""
    agent = offreg.make_agent(name, _dataset(), seed=0, batch_size=16)
    path = offreg.save_agent(agent, tmp_path / "x.msgpack")
    loaded = offreg.load_agent(path)
    obs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    expected = np.asarray(agent.act(obs))
    assert expected.shape == (5, 2)
    np.testing.assert_array_equal(np.asarray(loaded.act(obs)), expected)
    _assert_same(loaded, agent)
