"""D4RL reader: qlearning_dataset and sequence_dataset semantics against row-by-row NumPy loops."""

import h5py
import numpy as np
import pytest
from d4rl_files import expected_episodes, expected_qlearning, write_d4rl_file

from offreg.data import d4rl, load_dataset
from offreg.errors import ConfigError


@pytest.fixture(autouse=True)
def _caches(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("OFFREG_DATA_DIR", str(tmp_path / "offreg"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("OFFREG_D4RL_BASE_URL", "http://127.0.0.1:9/")  # never the real network


def _host(ds):
    t = ds.transitions
    return {k: np.asarray(getattr(t, k)) for k in ("observations", "actions", "rewards", "next_observations",
                                                   "terminals")}


@pytest.mark.parametrize(
    "env,replay,terminate_on_end",
    [("hopper", False, False), ("walker2d", True, False), ("halfcheetah", False, True), ("antmaze", False, False)],
)
def test_qlearning_matches_d4rl_loop(tmp_path, env, replay, terminate_on_end):
    path = tmp_path / "data.hdf5"
    arrays = write_d4rl_file(path, env, n_episodes=8, replay_float64=replay, seed=3)
    ds = load_dataset(path, env=env, terminate_on_end=terminate_on_end)
    expect = expected_qlearning(arrays, terminate_on_end)
    got = _host(ds)
    for key in ("observations", "actions", "next_observations", "rewards"):
        np.testing.assert_array_equal(got[key], expect[key], err_msg=key)
    np.testing.assert_array_equal(got["terminals"], expect["terminals"].astype(np.float32))
    n = len(arrays["rewards"])
    dropped = 0 if terminate_on_end else int(arrays["timeouts"][: n - 1].sum())
    assert len(ds) == n - 1 - dropped
    assert ds.info.obs_dim == arrays["observations"].shape[1] and ds.info.act_dim == arrays["actions"].shape[1]
    for k in ("observations", "rewards", "terminals"):
        assert got[k].dtype == np.float32


def test_stored_next_observations_are_ignored(tmp_path):
    path = tmp_path / "data.hdf5"
    arrays = write_d4rl_file(path, "hopper", n_episodes=5, terminal_prob=0.0)
    ds = load_dataset(path, terminate_on_end=True)
    t = int(np.flatnonzero(arrays["timeouts"])[0])
    got = np.asarray(ds.transitions.next_observations)[t]
    np.testing.assert_array_equal(got, arrays["observations"][t + 1])
    assert not np.allclose(got, arrays["next_observations"][t])


def test_episodes_follow_sequence_dataset(tmp_path):
    path = tmp_path / "data.hdf5"
    arrays = write_d4rl_file(path, "walker2d", n_episodes=7, seed=1, trailing_steps=5)
    ds = load_dataset(path)
    expect = expected_episodes(arrays)
    assert ds.info.num_episodes == len(expect) == 7
    np.testing.assert_allclose(ds.episode_returns, [e["rewards"].astype(np.float64).sum() for e in expect], rtol=1e-12)
    np.testing.assert_array_equal(ds.episode_lengths, [len(e["rows"]) for e in expect])
    episodes = ds.episodes()
    for ep, ref in zip(episodes, expect, strict=True):
        rows = ref["rows"]
        kept = rows[~arrays["timeouts"][rows]]  # qlearning drops the timeout row
        np.testing.assert_array_equal(ep["observations"], arrays["observations"][kept].astype(np.float32))
        np.testing.assert_array_equal(ep["next_observations"], arrays["observations"][kept + 1].astype(np.float32))
        assert ep["length"] == len(rows)
    # the trailing unfinished episode belongs to no episode
    assert int(ds.episode_ends[-1]) == len(ds) - (5 - 1)
    # D4RL's sequence_dataset on the raw arrays gives the same episodes
    raw = d4rl.read_d4rl_file(path)
    seq = list(d4rl.sequence_dataset(raw))
    assert len(seq) == len(expect)
    for a, b in zip(seq, expect, strict=True):
        np.testing.assert_array_equal(a["rewards"], b["rewards"].astype(np.float32))


def _d4rl_loops_without_timeouts(terminals, n_obs, max_steps, terminate_on_end):
    """D4RL's two loops with the step-counter fallback, copied statement by statement."""
    kept, episode_step = [], 0
    for i in range(len(terminals) - 1):
        done_bool = bool(terminals[i])
        final_timestep = episode_step == max_steps - 1
        if (not terminate_on_end) and final_timestep:
            episode_step = 0
            continue
        if done_bool or final_timestep:
            episode_step = 0
        kept.append(i)
        episode_step += 1
    ends, episode_step = [], 0
    for i in range(len(terminals)):
        final_timestep = episode_step == max_steps - 1
        if bool(terminals[i]) or final_timestep:
            episode_step = 0
            ends.append(i)
        episode_step += 1
    return np.array(kept), np.array(ends)


@pytest.mark.parametrize("terminate_on_end", [False, True])
def test_without_timeouts_uses_d4rl_step_counter(tmp_path, terminate_on_end):
    path = tmp_path / "v0.hdf5"
    arrays = write_d4rl_file(path, "hopper", n_episodes=6, max_episode_steps=12, with_timeouts=False, seed=5)
    raw = d4rl.read_d4rl_file(path)
    assert "timeouts" not in raw
    q = d4rl.qlearning_dataset(raw, terminate_on_end, max_episode_steps=12)
    kept, ends = _d4rl_loops_without_timeouts(arrays["terminals"], len(arrays["rewards"]), 12, terminate_on_end)
    np.testing.assert_array_equal(q["rows"], kept)
    np.testing.assert_array_equal(q["observations"], arrays["observations"][kept].astype(np.float32))
    np.testing.assert_array_equal(q["next_observations"], arrays["observations"][kept + 1].astype(np.float32))
    starts, got_ends = d4rl.episode_bounds(raw, 12)
    np.testing.assert_array_equal(got_ends, ends)


def test_reader_reads_only_training_keys_and_metadata(tmp_path):
    path = tmp_path / "data.hdf5"
    write_d4rl_file(path, "hopper", replay_float64=True)
    raw = d4rl.read_d4rl_file(path)
    assert set(raw) == {"observations", "actions", "rewards", "terminals", "timeouts", "metadata"}
    assert raw["observations"].dtype == np.float32 and raw["terminals"].dtype == np.bool_
    assert raw["metadata"]["algorithm"] == "SAC" and raw["metadata"]["iteration"] == 123
    assert raw["metadata"]["policy/nonlinearity"] == "relu"


def test_column_rewards_are_squeezed_and_npz_loads_like_hdf5(tmp_path):
    path = tmp_path / "data.hdf5"
    arrays = write_d4rl_file(path, "hopper", n_episodes=4)
    col = tmp_path / "col.h5"
    with h5py.File(col, "w") as f:
        for k in ("observations", "actions", "terminals", "timeouts"):
            f[k] = arrays[k]
        f["rewards"] = arrays["rewards"].reshape(-1, 1)
    npz = tmp_path / "data.npz"
    np.savez(npz, **{k: arrays[k] for k in ("observations", "actions", "rewards", "terminals", "timeouts")})
    ref = _host(load_dataset(path))
    for other in (col, npz):
        got = _host(load_dataset(other))
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{other.name}:{k}")


def test_file_named_like_a_d4rl_download_gets_its_catalogue_entry(tmp_path):
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_file(path, "hopper")
    with pytest.warns(UserWarning, match="rows but the catalogue expects 1000000"):
        ds = load_dataset(path)
    assert ds.info.env_id == "hopper" and ds.info.source == "file"
    assert (ds.info.ref_min_score, ds.info.ref_max_score) == (-20.272305, 3234.3)
    assert ds.info.normalized_score(3234.3) == pytest.approx(100.0)


def test_antmaze_info_and_reward_shift(tmp_path):
    path = tmp_path / "maze.hdf5"
    arrays = write_d4rl_file(path, "antmaze", n_episodes=3, max_episode_steps=50)
    with pytest.raises(ConfigError, match="'antmaze' needs reward_scale and reward_shift"):
        load_dataset(path, env="antmaze", reward_transform="antmaze")  # no default: the agents' constants differ
    ds = load_dataset(path, env="antmaze", reward_transform="antmaze", reward_scale=1.0, reward_shift=-1.0)
    expect = expected_qlearning(arrays)
    np.testing.assert_array_equal(np.asarray(ds.transitions.rewards), expect["rewards"] - 1.0)
    assert ds.info.env_id is None and (ds.info.ref_min_score, ds.info.ref_max_score) == (0.0, 1.0)
    assert (ds.info.reward_transform, ds.info.reward_scale, ds.info.reward_shift) == ("antmaze", 1.0, -1.0)
    cql = load_dataset(path, env="antmaze", reward_transform="antmaze", reward_scale=4.0, reward_shift=-2.0)
    np.testing.assert_allclose(np.asarray(cql.transitions.rewards), 4.0 * (expect["rewards"] - 0.5))
    # sequence_dataset splits AntMaze at its relabelled terminals as well as at timeouts
    assert ds.info.num_episodes == len(expected_episodes(arrays))


def test_episode_slices_with_terminate_on_end_and_final_row_end(tmp_path):
    path = tmp_path / "data.hdf5"
    arrays = write_d4rl_file(path, "hopper", n_episodes=5, trailing_steps=0, seed=7)  # last row ends an episode
    ds = load_dataset(path, terminate_on_end=True)
    expect = expected_episodes(arrays)
    n = len(arrays["rewards"])
    assert expect[-1]["rows"][-1] == n - 1
    for ep, ref in zip(ds.episodes(), expect, strict=True):
        rows = ref["rows"][ref["rows"] < n - 1]  # every row is a transition except the file's last
        assert len(ep["rewards"]) == len(rows)
        np.testing.assert_array_equal(ep["actions"], arrays["actions"][rows].astype(np.float32))
        np.testing.assert_array_equal(ep["terminals"], arrays["terminals"][rows].astype(np.float32))


def _final_flags_loop(terminals, max_steps, for_qlearning, terminate_on_end):
    """D4RL's step counter row by row (``qlearning_dataset`` / ``sequence_dataset``)."""
    out, step = np.zeros(len(terminals), bool), 0
    for i, done in enumerate(terminals):
        final = step == max_steps - 1
        out[i] = final
        if for_qlearning and final and not terminate_on_end:
            step = 0
            continue
        if done or final:
            step = 0
        step += 1
    return out


@pytest.mark.parametrize("max_steps", [1, 2, 3, 5, 12, 1000])
@pytest.mark.parametrize("for_qlearning,terminate_on_end", [(True, False), (True, True), (False, False)])
def test_final_flags_equal_d4rls_counter_loop(max_steps, for_qlearning, terminate_on_end):
    rng = np.random.default_rng(max_steps)
    for n, p in [(1, 0.5), (40, 0.0), (40, 1.0), (300, 0.05), (3000, 0.002), (5000, 0.3)]:
        terminals = rng.random(n) < p
        got = d4rl.final_flags(terminals, None, max_steps, for_qlearning=for_qlearning,
                               terminate_on_end=terminate_on_end)
        want = _final_flags_loop(terminals.tolist(), max_steps, for_qlearning, terminate_on_end)
        np.testing.assert_array_equal(got, want, err_msg=f"n={n} p={p}")


def test_final_flags_cost_grows_with_episodes_not_rows():
    """2M rows without ``timeouts`` (D4RL's v0 files): the step counter once cost ~0.4 s of Python."""
    import time

    terminals = np.zeros(2_000_000, bool)
    terminals[::700] = True
    t0 = time.process_time()
    for q in (True, False):
        d4rl.final_flags(terminals, None, 1000, for_qlearning=q)
    assert time.process_time() - t0 < 0.15
