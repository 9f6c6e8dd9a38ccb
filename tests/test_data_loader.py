"""Catalogue, generated datasets, listing/summary, preprocessing and on-device sampling."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from d4rl_files import expected_episodes, expected_qlearning, write_d4rl_file

from offreg.data import (
    CATALOGUE,
    DatasetInfo,
    catalogue_rows,
    dataset_summary,
    download_dataset,
    format_summary,
    format_table,
    load_dataset,
    sample,
)
from offreg.data import generated as gen
from offreg.data.catalogue import MINARI_CATALOGUE
from offreg.errors import ConfigError


@pytest.fixture(autouse=True)
def _caches(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path / "offreg"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("OFFREG_D4RL_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setattr(gen, "_GENERATED", {})
    monkeypatch.setattr(gen, "PROVIDERS", [])


# --- catalogue ----------------------------------------------------------------------------------
def test_catalogue_covers_d4rl_locomotion_and_antmaze():
    for env in ("halfcheetah", "hopper", "walker2d", "ant"):
        for kind in ("random", "medium", "medium-replay", "medium-expert", "expert", "full-replay"):
            assert f"{env}-{kind}-v2" in CATALOGUE
    for version in ("v0", "v2"):
        for maze in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse"):
            e = CATALOGUE[f"antmaze-{maze}-{version}"]
            env_id = "antmaze-" + maze.split("-")[0]  # offreg's port of D4RL's maze (tests/test_antmaze.py)
            assert (e.ref_min_score, e.ref_max_score, e.env_id, e.obs_dim, e.act_dim) == (0.0, 1.0, env_id, 29, 8)
            assert e.max_episode_steps == (700 if maze.startswith("umaze") else 1000)
    e = CATALOGUE["hopper-medium-replay-v2"]
    assert e.url() == "http://127.0.0.1:9/gym_mujoco_v2/hopper_medium_replay-v2.hdf5"
    assert e.url("http://rail.eecs.berkeley.edu/datasets/offline_rl/") == (
        "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/hopper_medium_replay-v2.hdf5"
    )
    assert (e.ref_min_score, e.ref_max_score, e.rows, e.obs_dim, e.act_dim) == (-20.272305, 3234.3, 402_000, 11, 3)
    assert CATALOGUE["walker2d-medium-expert-v2"].rows == 1_999_995 and CATALOGUE["ant-medium-v2"].rows is None
    assert CATALOGUE["antmaze-large-diverse-v2"].path == (
        "ant_maze_v2/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5"
    )
    assert len({e.filename for e in CATALOGUE.values()}) == len(CATALOGUE)  # one cache file per name


def test_listing_statuses_and_table(tmp_path):
    (tmp_path / "d4rl").mkdir()
    write_d4rl_file(tmp_path / "d4rl" / "hopper_expert-v2.hdf5", "hopper")
    gen.register_generated(gen.GeneratedSpec("tiny-v0", "hopper", "tiny", lambda p: write_d4rl_file(p), kind="bundled"))
    rows = {r["name"]: r for r in catalogue_rows()}
    assert rows["hopper-expert-v2"]["status"] == "cached" and rows["hopper-expert-v2"]["size_mb"] is not None
    assert rows["hopper-medium-v2"]["status"] == "downloadable"
    assert rows["offreg/tiny-v0"]["status"] == "bundled" and rows["offreg/tiny-v0"]["source"] == "offreg"
    assert len(rows) == len(CATALOGUE) + 1 + len(MINARI_CATALOGUE)  # Minari's D4RL names: downloadable
    table = format_table([rows["hopper-medium-v2"], rows["offreg/tiny-v0"]], ["name", "status", "rows"])
    assert table.splitlines() == [
        "name              status        rows",
        "hopper-medium-v2  downloadable  1,000,000",
        "offreg/tiny-v0    bundled       -",
    ]


# --- generated datasets -------------------------------------------------------------------------
def test_generated_dataset_is_built_once_and_cached(tmp_path):
    calls = []

    def build(path):
        calls.append(path)
        write_d4rl_file(path, "hopper", n_episodes=5, seed=11)

    gen.register_generated(gen.GeneratedSpec("tiny-v0", "hopper", "tiny", build, ref_min_score=0.0,
                                             ref_max_score=100.0))
    ds = load_dataset("offreg/tiny-v0")
    arrays = write_d4rl_file(tmp_path / "ref.hdf5", "hopper", n_episodes=5, seed=11)
    np.testing.assert_array_equal(np.asarray(ds.transitions.actions), expected_qlearning(arrays)["actions"])
    assert (tmp_path / "offreg" / "tiny-v0.hdf5").is_file() and len(calls) == 1
    assert calls[0] != tmp_path / "offreg" / "tiny-v0.hdf5"  # built under a temporary name
    assert [p.name for p in (tmp_path / "offreg").iterdir()] == ["tiny-v0.hdf5"]
    load_dataset("offreg/tiny-v0")
    assert len(calls) == 1
    assert ds.info.source == "offreg" and ds.info.env_id == "hopper" and ds.info.normalized_score(50.0) == 50.0
    assert download_dataset("offreg/tiny-v0") == tmp_path / "offreg" / "tiny-v0.hdf5"


def test_a_changed_fingerprint_regenerates_instead_of_reusing_a_stale_cache():
    calls = []

    def build(seed):
        def _build(path):
            calls.append(seed)
            write_d4rl_file(path, "hopper", n_episodes=4, seed=seed)
        return _build

    gen.register_generated(gen.GeneratedSpec("fp-v0", "hopper", "fp", build(1), fingerprint="aaaa"))
    first = np.asarray(load_dataset("offreg/fp-v0").transitions.actions)
    gen.register_generated(gen.GeneratedSpec("fp-v0", "hopper", "fp", build(2), fingerprint="bbbb"))
    second = np.asarray(load_dataset("offreg/fp-v0").transitions.actions)
    assert calls == [1, 2]
    assert first.shape != second.shape or not np.array_equal(first, second)
    gen.register_generated(gen.GeneratedSpec("fp-v0", "hopper", "fp", build(3), fingerprint="bbbb"))
    load_dataset("offreg/fp-v0")
    assert calls == [1, 2]  # same fingerprint: the cache is reused


def test_a_corrupt_cached_generated_file_is_regenerated_with_a_note(tmp_path, capsys):
    calls = []

    def build(path):
        calls.append(path)
        write_d4rl_file(path, "hopper", n_episodes=4, seed=5)

    gen.register_generated(gen.GeneratedSpec("tiny-v0", "hopper", "tiny", build, kind="bundled"))
    first = np.asarray(load_dataset("offreg/tiny-v0").transitions.actions)
    cached = tmp_path / "offreg" / "tiny-v0.hdf5"
    cached.write_bytes(cached.read_bytes()[:200])  # truncated, as by a full disk or a killed copy
    capsys.readouterr()
    again = np.asarray(load_dataset("offreg/tiny-v0").transitions.actions)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: dataset 'offreg/tiny-v0'") and lines[0].endswith(
        "regenerating it"), lines
    assert "truncated or corrupt" in lines[0] and len(calls) == 2
    np.testing.assert_array_equal(again, first)
    assert [p.name for p in (tmp_path / "offreg").iterdir()] == ["tiny-v0.hdf5"]


def test_a_corrupt_downloaded_d4rl_file_still_fails():
    import os

    from offreg.errors import DatasetError

    d4rl_dir = os.environ["D4RL_DATASET_DIR"]
    os.makedirs(d4rl_dir)
    with open(os.path.join(d4rl_dir, "hopper_medium-v2.hdf5"), "wb") as f:
        f.write(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="truncated or corrupt.*download or generate it again"):
        load_dataset("hopper-medium-v2", download=False)


# --- summary ------------------------------------------------------------------------------------
def test_dataset_summary_matches_numpy(tmp_path):
    (tmp_path / "d4rl").mkdir()
    path = tmp_path / "d4rl" / "walker2d_medium_replay-v2.hdf5"
    arrays = write_d4rl_file(path, "walker2d", n_episodes=9, replay_float64=True, seed=4)
    with pytest.warns(UserWarning, match="catalogue expects"):
        s = dataset_summary("walker2d-medium-replay-v2")
    returns = np.array([e["rewards"].sum() for e in expected_episodes(arrays)])
    assert s["status"] == "cached" and s["episodes"] == len(returns) == 9
    assert s["return_mean"] == pytest.approx(returns.mean(), rel=1e-6)
    assert s["return_std"] == pytest.approx(returns.std(), rel=1e-6)
    assert (s["return_min"], s["return_max"]) == (pytest.approx(returns.min()), pytest.approx(returns.max()))
    assert (s["obs_dim"], s["act_dim"], s["ref_min_score"], s["ref_max_score"]) == (17, 6, 1.629008, 4592.3)
    assert s["rows"] == len(arrays["rewards"]) and s["transitions"] == len(expected_qlearning(arrays)["rewards"])
    assert s["timeouts"] == int(arrays["timeouts"].sum()) and s["terminals"] == int(arrays["terminals"].sum())
    assert s["size_mb"] == pytest.approx(path.stat().st_size / 2**20, abs=0.1)
    text = format_summary(s)
    assert "return_mean" in text and "walker2d-medium-replay-v2" in text


def test_summary_of_uncached_entry_does_not_download():
    s = dataset_summary("ant-expert-v2")
    assert s["status"] == "downloadable" and s["episodes"] is None
    assert (s["obs_dim"], s["act_dim"], s["ref_min_score"], s["ref_max_score"]) == (111, 8, -325.6, 3879.7)


# --- action bounds ------------------------------------------------------------------------------
def _scaled_actions_file(path, env="hopper"):
    """A D4RL file whose rows 0, 3, 6, ... have one action entry scaled to 4.5 (outside [-1, 1])."""
    import h5py

    write_d4rl_file(path, env, n_episodes=3)
    with h5py.File(path, "r+") as f:
        actions = f["actions"][()]
        actions[::3, 0] = 4.5
        actions[1::3] = np.clip(actions[1::3], -1.0, 1.0)  # exactly on the bound is inside
        actions[1, :] = -1.0
        f["actions"][...] = actions
        return len(actions), len(actions[::3])


def test_actions_outside_the_environment_bounds_warn_once(tmp_path):
    from offreg.errors import OffregWarning

    path = tmp_path / "scaled.hdf5"
    n, outside = _scaled_actions_file(path)
    with pytest.warns(OffregWarning) as record:
        ds = load_dataset(path, env="hopper")
    msgs = [str(w.message) for w in record if issubclass(w.category, OffregWarning)]
    assert len(msgs) == 1, msgs
    assert f"{outside} of {n} rows ({100 * outside / n:.1f}%)" in msgs[0]
    for fragment in ("bounds [-1, 1] of environment 'hopper'", "max 4.5", "max_action * tanh", "BC, TD3+BC"):
        assert fragment in msgs[0], (fragment, msgs[0])
    assert "\n" not in msgs[0]
    assert float(np.max(ds.transitions.actions)) == 4.5  # a warning, not a refusal: the data is unchanged


def test_actions_inside_the_bounds_or_without_an_environment_do_not_warn(tmp_path):
    import warnings

    from offreg.errors import OffregWarning

    inside, scaled = tmp_path / "inside.hdf5", tmp_path / "scaled.hdf5"
    write_d4rl_file(inside, "hopper", n_episodes=3)
    _scaled_actions_file(scaled)
    _scaled_actions_file(tmp_path / "maze.hdf5", env="antmaze")
    with warnings.catch_warnings():
        warnings.simplefilter("error", OffregWarning)
        load_dataset(inside, env="hopper")
        load_dataset(scaled)  # no environment named: bounds unknown
        load_dataset(tmp_path / "maze.hdf5", env="antmaze")  # which maze is unknown: no environment


def test_action_bounds_table_matches_the_environments():
    from offreg.data.catalogue import ENV_ACTION_BOUNDS
    from offreg.envs import make_env

    assert sorted(ENV_ACTION_BOUNDS) == [
        "ant", "antmaze-large", "antmaze-medium", "antmaze-umaze", "door", "halfcheetah", "hammer", "hopper", "pen",
        "relocate", "walker2d",
    ]
    for name, (low, high) in ENV_ACTION_BOUNDS.items():
        space = make_env(name).action_space
        np.testing.assert_array_equal(space.low, low)
        np.testing.assert_array_equal(space.high, high)


def test_cli_prints_the_bounds_warning_as_one_line(tmp_path, capsys):
    from offreg.cli import main

    (tmp_path / "d4rl").mkdir()
    _scaled_actions_file(tmp_path / "d4rl" / "hopper_medium-v2.hdf5")  # the cached file of a D4RL name
    assert main(["datasets", "info", "hopper-medium-v2"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    bounds = [line for line in err if "outside the action bounds" in line]
    assert len(bounds) == 1 and bounds[0].startswith("warning: dataset 'hopper-medium-v2': ")
    assert all(line.startswith("warning: ") for line in err), err  # no file:line, no source line


# --- preprocessing ------------------------------------------------------------------------------
def test_observation_normalization_recorded_and_applied(tmp_path):
    path = tmp_path / "d.hdf5"
    arrays = write_d4rl_file(path, "hopper", n_episodes=6)
    ds = load_dataset(path, normalize_observations=True, obs_norm_eps=1e-3)
    q = expected_qlearning(arrays)
    obs = q["observations"].astype(np.float64)
    mean, std = obs.mean(0), obs.std(0) + 1e-3
    np.testing.assert_allclose(np.asarray(ds.transitions.observations), (obs - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ds.transitions.next_observations), (q["next_observations"] - mean) / std,
                               rtol=1e-4, atol=1e-5)
    info = DatasetInfo.from_dict(ds.info.to_dict())  # what a saved agent keeps
    np.testing.assert_allclose(info.normalize_observations(obs[:5]), (obs[:5] - mean) / std, rtol=1e-4, atol=1e-5)


def test_locomotion_reward_scale(tmp_path):
    path = tmp_path / "d.hdf5"
    arrays = write_d4rl_file(path, "halfcheetah", n_episodes=6, seed=2)
    ds = load_dataset(path, reward_transform="locomotion")
    returns = [e["rewards"].astype(np.float64).sum() for e in expected_episodes(arrays)]
    scale = 1000.0 / (max(returns) - min(returns))
    assert ds.info.reward_scale == pytest.approx(scale, rel=1e-9) and ds.info.reward_transform == "locomotion"
    np.testing.assert_allclose(np.asarray(ds.transitions.rewards), expected_qlearning(arrays)["rewards"] * scale,
                               rtol=1e-5)
    with pytest.raises(ConfigError, match="unknown reward transform"):
        load_dataset(path, reward_transform="bogus")


# --- sampling -----------------------------------------------------------------------------------
def test_sampling_inside_jitted_scan_is_pure_and_uniform(tmp_path):
    path = tmp_path / "d.hdf5"
    write_d4rl_file(path, "hopper", n_episodes=4, max_episode_steps=20, terminal_prob=0.0)
    ds = load_dataset(path)
    n = len(ds)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw(transitions, key):
        def body(carry, k):
            b = sample(transitions, k, 256)
            return carry + b.rewards.sum(), b

        return jax.lax.scan(body, jnp.float32(0), jax.random.split(key, 100))

    total, batches = draw(ds.transitions, jax.random.PRNGKey(0))
    total2, batches2 = draw(ds.transitions, jax.random.PRNGKey(0))
    chex.assert_trees_all_equal(batches, batches2)  # pure: same key, same batches, one trace
    obs = np.asarray(ds.transitions.observations)
    got = np.asarray(batches.observations).reshape(-1, obs.shape[1])
    row_of = {o.tobytes(): i for i, o in enumerate(obs)}
    assert len(row_of) == n
    idx = np.array([row_of[o.tobytes()] for o in got])  # every sample is a dataset row ...
    for k in ("actions", "rewards", "next_observations", "terminals"):  # ... with its own fields
        np.testing.assert_array_equal(np.asarray(getattr(batches, k)).reshape(len(idx), -1),
                                      np.asarray(getattr(ds.transitions, k)).reshape(n, -1)[idx])
    assert float(total) == pytest.approx(float(np.asarray(batches.rewards).sum()), rel=1e-4)
    # uniform with replacement: chi-square goodness of fit on 25,600 draws over n rows
    counts = np.bincount(idx, minlength=n)
    expected = len(idx) / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    from scipy.stats import chi2 as chi2_dist

    assert chi2_dist.sf(chi2, n - 1) > 1e-4


def test_sample_vmaps_over_keys_and_matches_numpy_gather():
    info = DatasetInfo("toy", "file", None, 2, 1, 0)
    obs = np.arange(20, dtype=np.float32).reshape(10, 2)
    from offreg.data import from_arrays

    ds = from_arrays(obs, obs[:, :1], np.arange(10), obs + 100, np.arange(10) % 2, info)
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    batches = jax.jit(jax.vmap(lambda k: sample(ds.transitions, k, 7)))(keys)
    for i, k in enumerate(keys):
        idx = np.asarray(jax.random.randint(k, (7,), 0, 10))  # the documented draw
        np.testing.assert_array_equal(np.asarray(batches.observations[i]), obs[idx])
        np.testing.assert_array_equal(np.asarray(batches.next_observations[i]), obs[idx] + 100)
        np.testing.assert_array_equal(np.asarray(batches.terminals[i]), idx % 2)


# --- scale --------------------------------------------------------------------------------------
def _raw(n: int, obs_dim: int, act_dim: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": rng.random(n) < 1e-3,
        "timeouts": np.arange(n) % 1000 == 999,
        "metadata": {},
    }


def test_transitions_are_gathered_in_place_without_a_host_copy():
    """The loader's host side holds no second copy of an array: only chunk-sized temporaries.

    (Before, ``actions[rows]`` and friends were full copies; observations went to the device whole and
    were gathered there twice, so the peak held three copies of them.)
    """
    import tracemalloc

    from offreg.data import d4rl
    from offreg.data.loader import _qlearning_on_device

    raw = _raw(400_000, 11, 16)  # timeouts drop a row every 1000; several 65536-row chunks
    expect = d4rl.qlearning_dataset({k: v.copy() for k, v in raw.items() if k != "metadata"})
    rows = expect["rows"]
    act_bytes = raw["actions"].nbytes
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        t = _qlearning_on_device(raw, rows)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * act_bytes, (peak, act_bytes)
    assert raw == {}
    for k in ("observations", "next_observations", "actions", "rewards"):
        np.testing.assert_array_equal(np.asarray(getattr(t, k)), expect[k], err_msg=k)
    np.testing.assert_array_equal(np.asarray(t.terminals), expect["terminals"].astype(np.float32))


@pytest.mark.slow
def test_a_2m_row_file_loads_within_the_scale_targets(tmp_path):
    """Issue 14: a 2M-row D4RL file loads in <= 5 s (CPU time here: the machine is shared) with a peak
    RSS increase over the after-import baseline <= 2x the arrays (1.65x pins the in-place gathers;
    it was 1.8x before). Measured in a fresh process by experiments/bench/data_loading.py."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import h5py

    path = tmp_path / "big.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in _raw(2_000_000, 11, 3).items():
            if k != "metadata":
                f.create_dataset(k, data=v)
    bench = Path(__file__).resolve().parents[1] / "experiments" / "bench" / "data_loading.py"
    out = subprocess.run([sys.executable, str(bench), "--_load-child", str(path)], check=True,
                         capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["transitions"] == 2_000_000 - 1 - 1999
    assert r["load_cpu_s"] <= 5.0, r
    assert r["peak_increase_bytes"] <= 1.65 * r["arrays_bytes"], r
