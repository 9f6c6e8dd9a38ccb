"""offreg collect: SAC behaviour policies, D4RL-format files, bundled-dataset regeneration, bad arguments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from offreg.data import d4rl as D
from offreg.data.generate import bundled, policy
from offreg.data.generate import collect as C
from offreg.data.generate import rollout as R
from offreg.data.generate import sac as S
from offreg.data.generate import snapshots as SN
from offreg.envs import make_env
from offreg.errors import ConfigError, OffregError, UnknownNameError
from offreg.seeds import derived_seed

TINY = S.SACConfig(hidden_dims=(32, 32), batch_size=64, start_steps=500, chunk=500)
METADATA_KEYS = (
    "env_id", "gym_id", "level", "behavior_return_mean", "behavior_return_std", "num_episodes",
    "mujoco_version", "gymnasium_version", "command", "seed", "algorithm",
)


def numpy_returns(rewards, terminals, timeouts):
    """Independent episode split: an episode ends at a terminal or a timeout row."""
    out, acc = [], 0.0
    for r, d, t in zip(rewards, terminals, timeouts, strict=True):
        acc += float(r)
        if d or t:
            out.append(acc)
            acc = 0.0
    return np.asarray(out)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect")
    paths = C.collect(
        "hopper", "random,medium,medium-replay,expert,medium-expert", out, train_steps=1500, level_steps=400,
        snapshot_every=500, eval_episodes=2, num_envs=3, config=TINY, command="offreg collect --test", log=None,
    )
    return out, paths


def test_collect_writes_valid_d4rl_files(tiny_run):
    out, paths = tiny_run
    assert sorted(paths) == sorted(C.LEVELS)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(f"hopper-{lv}.hdf5" for lv in C.LEVELS)
    import h5py

    for level, path in paths.items():
        raw = D.read_d4rl_file(path)  # the loader's reader and validator
        D.validate_d4rl_arrays(raw, level, path, obs_dim=11, act_dim=3, env="hopper")
        meta = raw["metadata"]
        for k in METADATA_KEYS:
            assert k in meta, (level, k)
        assert meta["level"] == level and meta["env_id"] == "hopper" and meta["command"] == "offreg collect --test"
        with h5py.File(path) as f:
            for k in D.FIELDS + ("infos/action_log_probs", "infos/qpos", "infos/qvel"):
                assert k in f, (level, k)
            assert f["observations"].dtype == np.float32 and f["terminals"].dtype == np.bool_
            obs, nxt = f["observations"][:], f["next_observations"][:]
            term, tout, rew = f["terminals"][:], f["timeouts"][:], f["rewards"][:]
            qpos, qvel = f["infos/qpos"][:], f["infos/qvel"][:]
            if level in ("medium", "expert"):
                assert f["metadata/policy/fc0/weight"].shape == (32, 11)  # torch layout [out, in]
                assert f["metadata/policy/last_fc_log_std/bias"].shape == (3,)
        assert not np.any(term & tout)
        rets = numpy_returns(rew, term, tout)
        assert meta["num_episodes"] == len(rets)
        np.testing.assert_allclose(meta["behavior_return_mean"], rets.mean(), rtol=1e-6)
        np.testing.assert_allclose(meta["behavior_return_std"], rets.std(), rtol=1e-6)
        # within an episode the next row starts where this one ended; qpos[1:] is hopper's obs[:5]
        inside = ~(term | tout)[:-1]
        np.testing.assert_array_equal(nxt[:-1][inside], obs[1:][inside])
        np.testing.assert_array_equal(qpos[:, 1:], obs[:, :5])
        np.testing.assert_array_equal(qvel, np.clip(qvel, -10, 10))
        want = {"medium-replay": None, "medium-expert": None}.get(level, 400)
        if want is not None:
            assert len(rew) == want
    # medium-replay = the replay buffer up to the medium snapshot's step
    import json

    index = json.loads((out / "snapshots" / "snapshots.json").read_text())
    assert len(D.read_d4rl_file(paths["medium-replay"])["rewards"]) == index["medium_step"]
    assert {s["step"] for s in index["snapshots"]} == {500, 1000, 1500}
    # medium-expert = medium cut at its last complete episode, then expert
    med, exp, both = (D.read_d4rl_file(paths[lv]) for lv in ("medium", "expert", "medium-expert"))
    ends = np.flatnonzero(med["terminals"] | med["timeouts"])
    cut = ends[-1] + 1
    want = np.concatenate([med["observations"][:cut], exp["observations"]])
    np.testing.assert_array_equal(both["observations"], want)


def test_collect_file_loads_through_load_dataset(tiny_run):
    from offreg.data.loader import load_dataset

    _, paths = tiny_run
    ds = load_dataset(str(paths["medium"]), env="hopper", progress=False)
    raw = D.read_d4rl_file(paths["medium"])
    n = len(raw["rewards"])
    assert len(ds) == n - 1 - int(raw["timeouts"][:-1].sum())  # D4RL qlearning_dataset length
    assert ds.info.ref_max_score == pytest.approx(3234.3)


def test_tanh_gaussian_log_prob_matches_scipy():
    key = jax.random.PRNGKey(3)
    mean = jnp.array([[0.3, -1.2], [0.0, 2.0]])
    log_std = jnp.array([[-0.5, 0.1], [0.4, -1.0]])
    a, logp = policy.tanh_gaussian_sample(mean, log_std, key)
    u = np.arctanh(np.clip(np.asarray(a, np.float64), -1 + 1e-12, 1 - 1e-12))
    log_n = stats.norm.logpdf(u, np.asarray(mean), np.exp(np.asarray(log_std))).sum(-1)
    want = log_n - np.log(1 - np.tanh(u) ** 2).sum(-1)
    np.testing.assert_allclose(np.asarray(logp), want, rtol=1e-3, atol=1e-3)


def test_rollout_is_deterministic_and_seeded():
    pool = R.EnvPool("hopper", 1, 0)
    sac = S.SAC(TINY, pool.obs_dim, pool.act_dim)
    params = jax.device_get(sac.init(jax.random.PRNGKey(0)).actor.params)
    a = R.rollout("hopper", params, 300, seed=5, num_envs=4)
    b = R.rollout("hopper", params, 300, seed=5, num_envs=4)
    c = R.rollout("hopper", params, 300, seed=6, num_envs=4)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["actions"], c["actions"])
    # the first episode starts from the seeded reset of episode 0
    import gymnasium  # noqa: F401

    env = make_env("hopper")
    obs0, _ = env.reset(seed=derived_seed(5, 0))
    np.testing.assert_array_equal(a["observations"][0], np.asarray(obs0, np.float32))


def test_snapshot_round_trip(tmp_path):
    pool = R.EnvPool("hopper", 1, 0)
    params = jax.device_get(S.SAC(TINY, pool.obs_dim, pool.act_dim).init(jax.random.PRNGKey(1)).actor.params)
    SN.save_snapshot(tmp_path / "s.npz", params, {"step": 7})
    back, meta = SN.load_snapshot(tmp_path / "s.npz")
    assert meta == {"step": 7}
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, back)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:  # no pickle needed to read it
        assert "params/mean/Dense_0/kernel" in z.files


def test_pack_replay_round_trip_is_exact():
    rng = np.random.default_rng(0)
    n, nq, nv = 50, 6, 6
    qpos = rng.normal(size=(n, nq)).astype(np.float32)
    qvel = rng.normal(size=(n, nv)).astype(np.float32) * 8
    obs = np.concatenate([qpos[:, 1:], np.clip(qvel, -10, 10)], 1)
    nxt = np.roll(obs, -1, 0)
    nxt[[9, 30, 49]] = rng.normal(size=(3, obs.shape[1]))  # episode ends
    data = {"observations": obs, "next_observations": nxt, "actions": rng.normal(size=(n, 3)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "terminals": np.zeros(n, bool),
            "timeouts": np.zeros(n, bool), "qpos": qpos, "qvel": qvel}
    packed = bundled.pack_replay(data)
    assert "next_observations" not in packed and "qpos" not in packed
    np.testing.assert_array_equal(packed["end_index"], [9, 30, 49])
    np.testing.assert_array_equal(packed["qvel_fix_index"], np.flatnonzero(np.abs(qvel).max(1) > 10))
    back = bundled.unpack_replay(packed)
    assert set(back) == set(data)
    for k in data:
        np.testing.assert_array_equal(back[k], data[k])


def test_bad_arguments_give_clear_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'hopper'"):
        C.collect("hoper", "random", tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean 'medium'"):
        C.collect("hopper", "random,mediun", tmp_path)
    with pytest.raises(ConfigError, match="level_steps"):
        C.collect("hopper", "random", tmp_path, level_steps=0)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OffregError, match="is a file"):
        C.collect("hopper", "random", afile)
    with pytest.raises(OffregError, match="not writable"):
        C.collect("hopper", "random", afile / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing half-written


def test_cli_collect_bad_env_exits_with_one_line(capsys, tmp_path):
    from offreg.cli import main

    assert main(["collect", "--env", "walker", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown environment 'walker'") and "\n" not in err


def test_bundled_regeneration_is_deterministic(tmp_path):
    man = bundled.manifest()
    assert "hopper" in man
    from offreg.data.generated import generated_specs

    specs = generated_specs()
    assert "hopper-medium-replay-v0" in specs and specs["hopper-medium-v0"].kind == "bundled"
    a = bundled.build_level("hopper", "medium", tmp_path / "a.hdf5", level_steps=300)
    b = bundled.build_level("hopper", "medium", tmp_path / "b.hdf5", level_steps=300)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    ra, rb = D.read_d4rl_file(tmp_path / "a.hdf5"), D.read_d4rl_file(tmp_path / "b.hdf5")
    np.testing.assert_array_equal(ra["observations"], rb["observations"])
    assert ra["metadata"]["level"] == "medium" and ra["metadata"]["snapshot_step"] == man["hopper"]["medium"]["step"]
    rep = bundled.build_level("hopper", "medium-replay", tmp_path / "r.hdf5")
    assert len(rep["rewards"]) == man["hopper"]["medium-replay"]["rows"]


def test_choose_levels_follows_the_one_third_rule():
    snaps = [SN.Snapshot(s, None, r, 0.0) for s, r in [(10, 200.0), (20, 1200.0), (30, 900.0), (40, 2400.0)]]
    # D4RL's expert return 3234.3 -> medium target 1078.1: the first snapshot at or above it
    medium, expert, target = C.choose_levels(snaps, 1 / 3, 3234.3)
    assert (medium.step, expert.step) == (20, 40) and target == pytest.approx(1078.1)
    # a run that never reaches it falls back to a third of its own best (2400 / 3 = 800)
    medium, expert, target = C.choose_levels(snaps[:1] + snaps[2:3], 1 / 3, 3234.3)
    assert (medium.step, expert.step, target) == (30, 30, pytest.approx(300.0))
    medium, _, target = C.choose_levels(snaps, 1 / 3)
    assert medium.step == 20 and target == pytest.approx(800.0)
    # medium must stop before the expert: reaching the target only with the best snapshot falls back too
    late = [SN.Snapshot(s, None, r, 0.0) for s, r in [(10, 300.0), (20, 700.0), (30, 2100.0)]]
    medium, expert, target = C.choose_levels(late, 1 / 3, 4592.3)
    assert (medium.step, expert.step, target) == (20, 30, pytest.approx(700.0))


def test_replay_from_snapshots_segments():
    segs = bundled.manifest()["walker2d"]["medium-replay"]["segments"]
    small = [dict(segs[0], rows=120), dict(segs[1], rows=80)]
    a = bundled.replay_from_snapshots("walker2d", small, seed=0, num_envs=2)
    b = bundled.replay_from_snapshots("walker2d", small, seed=0, num_envs=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert len(a["rewards"]) == 200
    # each segment ends an episode (terminal or a timeout at the cut)
    assert (a["terminals"] | a["timeouts"])[[119, 199]].all()
    # the first segment is uniform-random: log-prob log(1/2^6) on every row
    np.testing.assert_allclose(a["action_log_probs"][:120], -6 * np.log(2.0), rtol=1e-6)


def test_one_seed_hash_for_collection_and_evaluation():
    from offreg.engine import eval_seed

    # (2148, 7) and (11_500, 2) exceed 2^31 - 1 before the modulus: there the old mod-2^31 hash differed
    for seed, index in [(0, 0), (5, 3), (2148, 7), (11_500, 2)]:
        want = (seed * 1_000_003 + index) % (2**31 - 1)
        assert derived_seed(seed, index) == want == eval_seed(seed, index)


def test_building_a_bundled_dataset_says_what_it_does(tmp_path, capsys):
    a = bundled.build_level("hopper", "medium-expert", tmp_path / "a.hdf5", level_steps=60)
    err = capsys.readouterr().err
    for phase in ("rolling out the medium policy", "rolling out the expert policy", "writing the HDF5 file"):
        assert f"building offreg/hopper-medium-expert-v0: {phase}" in err, err
    assert "/120" in err  # a bar over the level's rows (2 x 60 for medium-expert)
    b = bundled.build_level("hopper", "medium-expert", tmp_path / "b.hdf5", level_steps=60, progress=False)
    assert capsys.readouterr().err == ""
    for k in a:  # the bar changes nothing in the data
        np.testing.assert_array_equal(a[k], b[k])
