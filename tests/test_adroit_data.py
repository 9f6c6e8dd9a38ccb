"""D4RL's Adroit names in the catalogue, offreg's D4RL-format Adroit files, and the path load -> train -> evaluate."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

import offreg  # noqa: E402
from offreg.cli import main  # noqa: E402
from offreg.data.catalogue import CATALOGUE, ENV_ACTION_BOUNDS, ENV_DIMS, entry_for_file, resolve  # noqa: E402
from offreg.data.generate.adroit import adroit_file  # noqa: E402
from offreg.envs import make_env  # noqa: E402
from offreg.errors import ConfigError, DatasetError, UnknownNameError  # noqa: E402
from offreg.logging import read_jsonl  # noqa: E402

# d4rl/infos.py (REF_MIN_SCORE/REF_MAX_SCORE of <task>-human-v0, shared by every Adroit dataset)
REFS = {
    "door": (-56.512833, 2880.5693087298737),
    "pen": (96.262799, 3076.8331017826877),
    "hammer": (-274.856578, 12794.134825156867),
    "relocate": (-6.425911, 4233.877797728884),
}
BASE = "http://rail.eecs.berkeley.edu/datasets/offline_rl/"
TINY = ["--set", "actor_hidden_dims=[8]", "--set", "critic_hidden_dims=[8]", "--set", "batch_size=16"]


# --- catalogue ------------------------------------------------------------------------------------
def test_catalogue_has_d4rls_adroit_names_urls_and_scores():
    names = [f"{t}-{k}-{v}" for t in REFS for k in ("human", "cloned", "expert") for v in ("v0", "v1")]
    assert all(n in CATALOGUE for n in names)
    assert len({CATALOGUE[n].filename for n in names}) == 24  # distinct cache files
    # URLs as d4rl/infos.py spells them
    assert CATALOGUE["door-human-v0"].url(BASE) == BASE + "hand_dapg/door-v0_demos_clipped.hdf5"
    assert CATALOGUE["pen-cloned-v0"].url(BASE) == BASE + "hand_dapg/pen-demos-v0-bc-combined.hdf5"
    assert CATALOGUE["relocate-expert-v0"].url(BASE) == BASE + "hand_dapg/relocate-v0_expert_clipped.hdf5"
    assert CATALOGUE["hammer-cloned-v1"].url(BASE) == BASE + "hand_dapg_v1/hammer-cloned-v1.hdf5"
    for n in names:
        e = CATALOGUE[n]
        task = n.split("-")[0]
        assert (e.env, e.env_id, (e.ref_min_score, e.ref_max_score)) == (task, task, REFS[task])
        assert entry_for_file(f"/somewhere/{e.filename}") is e
        assert resolve(f"d4rl/{n}").entry is e


@pytest.mark.parametrize("task", list(REFS))
def test_catalogue_dims_horizon_and_bounds_are_the_environments(task):
    env = make_env(task)
    try:
        e = CATALOGUE[f"{task}-expert-v1"]
        assert (env.observation_space.shape, env.action_space.shape) == ((e.obs_dim,), (e.act_dim,))
        assert ENV_DIMS[task] == {"door": (39, 28), "pen": (45, 24), "hammer": (46, 26), "relocate": (39, 30)}[task]
        assert e.max_episode_steps == env.spec.max_episode_steps == {"pen": 100}.get(task, 200)
        lo, hi = ENV_ACTION_BOUNDS[task]
        assert np.all(env.action_space.low == lo) and np.all(env.action_space.high == hi)
    finally:
        env.close()


# --- generated files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def door_file(tmp_path_factory):
    return adroit_file(tmp_path_factory.mktemp("adroit") / "door-human-v1.hdf5", "door", episodes=3, seed=0)


def test_generated_file_has_d4rls_hand_layout(door_file):
    with h5py.File(door_file) as f:
        keys = set()
        f.visit(lambda k: keys.add(k) if isinstance(f[k], h5py.Dataset) and not k.startswith("metadata") else None)
        assert keys == {"observations", "actions", "rewards", "terminals", "timeouts", "next_observations",
                        "infos/qpos", "infos/qvel", "infos/door_body_pos"}
        obs, nxt = f["observations"][:], f["next_observations"][:]
        timeouts, terminals = f["timeouts"][:], f["terminals"][:]
        qpos, door = f["infos/qpos"][:], f["infos/door_body_pos"][:]
        assert f["metadata/env_id"][()] == b"door" and f["metadata/reward"][()] == b"D4RL"
    assert obs.shape == (600, 39) and obs.dtype == np.float32
    assert np.flatnonzero(timeouts).tolist() == [199, 399, 599] and not terminals.any()  # D4RL's 200 steps
    starts = np.array([0, 200, 400])
    inner = np.setdiff1d(np.arange(599), [199, 399])
    np.testing.assert_array_equal(obs[inner + 1], nxt[inner])  # rows follow one another within episodes
    # the observation's first entries are qpos[1:-2] (D4RL's door layout), recorded before each step
    np.testing.assert_allclose(obs[:, :27], qpos[:, 1:-2], atol=1e-6)
    # the door frame is drawn once per episode, in D4RL's ranges
    for s in starts:
        assert np.all(door[s:s + 200] == door[s])
    assert np.all((door >= [-0.3, 0.25, 0.252]) & (door <= [-0.2, 0.35, 0.35]))
    assert len({tuple(door[s]) for s in starts}) == 3
    again = adroit_file(door_file.with_name("again.hdf5"), "door", episodes=3, seed=0)
    with h5py.File(door_file) as f, h5py.File(again) as g:
        np.testing.assert_array_equal(f["actions"][:], g["actions"][:])
        np.testing.assert_array_equal(f["rewards"][:], g["rewards"][:])


def test_load_generated_file_by_d4rl_name_and_by_env(door_file, tmp_path):
    ds = offreg.load_dataset(door_file)
    info = ds.info
    assert (info.env_id, info.obs_dim, info.act_dim, info.max_episode_steps) == ("door", 39, 28, 200)
    assert (info.ref_min_score, info.ref_max_score) == REFS["door"]
    assert info.num_transitions == 597  # qlearning_dataset drops the three timeout rows
    other = tmp_path / "my-door.hdf5"
    other.write_bytes(door_file.read_bytes())
    info2 = offreg.load_dataset(other, env="door").info
    assert (info2.env_id, info2.max_episode_steps, info2.ref_min_score, info2.ref_max_score) == (
        "door", 200, *REFS["door"]
    )
    assert offreg.load_dataset(other).info.env_id is None  # an unknown file names no environment


def test_train_td3bc_on_generated_door_file_reports_d4rl_normalized_score(door_file, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--agent", "td3bc", "--dataset", str(door_file), "--steps", "200", "--eval-every", "200",
                 "--eval-episodes", "2", *TINY, "--out", str(run), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "final normalized score" in out
    (ev,) = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"]
    returns = np.array(ev["returns"])
    assert len(returns) == 2 and ev["length_mean"] == 200
    lo, hi = REFS["door"]
    assert ev["score_mean"] == pytest.approx(np.mean(100 * (returns - lo) / (hi - lo)), rel=1e-6)


# --- mismatched pairings are refused --------------------------------------------------------------
@pytest.fixture(scope="module")
def pen_file(tmp_path_factory):
    return adroit_file(tmp_path_factory.mktemp("adroit") / "pen.hdf5", "pen", episodes=1, seed=0)


def test_pen_data_with_door_environment_is_refused(pen_file, tmp_path, capsys):
    with pytest.raises(DatasetError, match=r"observations have 45 dims but environment 'door' has 39") as e:
        offreg.load_dataset(pen_file, env="door")
    assert "\n" not in str(e.value)
    disguised = tmp_path / "door-expert-v1.hdf5"  # a pen file under a door file's name
    disguised.write_bytes(pen_file.read_bytes())
    run = tmp_path / "run"
    assert main(["train", "--agent", "td3bc", "--dataset", str(disguised), "--steps", "10", "--out", str(run),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "45 dims" in err and "'door'" in err
    assert not run.exists()


def test_generator_bad_arguments():
    with pytest.raises(UnknownNameError, match="'doors'.*'door'"):
        adroit_file("x.hdf5", "doors")
    with pytest.raises(ConfigError, match="episodes must be a positive integer"):
        adroit_file("x.hdf5", "door", episodes=0)
