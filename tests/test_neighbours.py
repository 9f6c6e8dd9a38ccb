"""PRDC's neighbour search against scipy's exact KD-tree, on every query."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import KDTree

from offreg.agents.neighbour_index import MAX_BLOCK, build_index, index_nbytes
from offreg.agents.neighbours import brute_force_nearest, locate, nearest
from offreg.errors import ConfigError

_nearest = jax.jit(nearest, static_argnames=("chunk", "block"))


def _random_data(n=2000, ds=5, da=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, ds)).astype(np.float32), rng.uniform(-1, 1, (n, da)).astype(np.float32)


def _d4rl_shaped(episodes=20, length=500, ds=11, da=3, seed=1):
    """Random-walk 'trajectories', normalized like D4RL states, with smooth tanh actions."""
    rng = np.random.default_rng(seed)
    s = np.cumsum(rng.normal(scale=0.1, size=(episodes, length, ds)), axis=1).reshape(-1, ds)
    s = (s - s.mean(0)) / (s.std(0) + 1e-3)
    a = np.tanh(np.cumsum(rng.normal(scale=0.2, size=(episodes, length, da)), axis=1)).reshape(-1, da)
    return s.astype(np.float32), a.astype(np.float32)


def _check_against_kdtree(states, actions, q_rows, q_actions, beta, k=16, chunk=32):
    index = build_index(states, actions, k=k)
    res = _nearest(
        index, jnp.float32(beta), jnp.asarray(states[q_rows]), jnp.asarray(q_actions), chunk=chunk, block=512
    )
    keys = np.hstack([np.float32(beta) * states, actions])  # float32 keys, as the official code builds them
    q = np.hstack([np.float32(beta) * states[q_rows], q_actions])
    ref_d, ref_i = KDTree(keys).query(q, k=2)  # scipy works in float64
    got_d = np.sqrt(np.asarray(res.dist_sq, np.float64))
    np.testing.assert_allclose(got_d, ref_d[:, 0], rtol=1e-5, atol=1e-6)
    # the returned row really is at that distance
    row = np.asarray(res.row)
    row_d = np.linalg.norm(keys[row].astype(np.float64) - q, axis=1)
    np.testing.assert_allclose(row_d, ref_d[:, 0], rtol=1e-5, atol=1e-6)
    unique = ref_d[:, 1] - ref_d[:, 0] > 1e-4 * np.maximum(ref_d[:, 1], 1e-3)
    np.testing.assert_array_equal(row[unique], ref_i[unique, 0])
    return res, unique


def test_random_data_matches_kdtree_on_every_query_and_uses_both_paths():
    states, actions = _random_data()
    rng = np.random.default_rng(2)
    rows = rng.integers(0, len(states), 256)
    q_actions = np.clip(actions[rows] + rng.normal(scale=0.5, size=actions[rows].shape), -1, 1).astype(np.float32)
    res, unique = _check_against_kdtree(states, actions, rows, q_actions, beta=0.3, k=16)
    cert = np.asarray(res.certified)
    assert 0.0 < cert.mean() < 1.0, cert.mean()  # both the candidate path and the fallback are exercised
    # many open queries: the batched matmul scan answers most, chunked slab scans the rest
    assert int(res.fallback_chunks) <= -(-int((~cert).sum()) // 32)
    assert unique.mean() > 0.99


@pytest.mark.parametrize("beta", [0.1, 2.0, 7.5])
def test_d4rl_shaped_data_matches_kdtree(beta):
    states, actions = _d4rl_shaped()
    rng = np.random.default_rng(3)
    rows = rng.integers(0, len(states), 256)
    q_actions = np.clip(actions[rows] + rng.normal(scale=0.3, size=actions[rows].shape), -1, 1).astype(np.float32)
    _check_against_kdtree(states, actions, rows, q_actions, beta=beta, k=32)


def test_ties_are_broken_by_lowest_index():
    states, actions = _random_data(n=300)
    states = np.concatenate([states, states[:50]])  # exact duplicate rows 300..349 of rows 0..49
    actions = np.concatenate([actions, actions[:50]])
    rows = np.arange(300, 350)  # query the duplicates with their own actions: distance 0, twice
    index = build_index(states, actions, k=4)
    res = _nearest(index, jnp.float32(2.0), jnp.asarray(states[rows]), jnp.asarray(actions[rows]))
    np.testing.assert_array_equal(np.asarray(res.row), np.arange(50))
    np.testing.assert_array_equal(np.asarray(res.dist_sq), 0.0)
    bf_row, _ = jax.jit(brute_force_nearest, static_argnums=4)(
        index, jnp.float32(2.0), jnp.asarray(states[rows]), jnp.asarray(actions[rows]), 64)
    np.testing.assert_array_equal(np.asarray(bf_row), np.arange(50))


def test_states_outside_the_dataset_fall_back_to_the_exact_scan():
    states, actions = _random_data(n=500)
    rng = np.random.default_rng(4)
    qs = rng.normal(size=(40, 5)).astype(np.float32)
    qa = rng.uniform(-1, 1, (40, 2)).astype(np.float32)
    index = build_index(states, actions, k=8)
    _, found = locate(index, jnp.asarray(qs))
    assert not np.asarray(found).any()
    res = _nearest(index, jnp.float32(1.0), jnp.asarray(qs), jnp.asarray(qa), chunk=16)
    assert not np.asarray(res.certified).any() and int(res.fallback_chunks) <= 3
    ref_d, ref_i = KDTree(np.hstack([states, actions])).query(np.hstack([qs, qa]))
    np.testing.assert_array_equal(np.asarray(res.row), ref_i)
    np.testing.assert_allclose(np.sqrt(np.asarray(res.dist_sq)), ref_d, rtol=1e-5)


def test_neighbour_never_farther_than_own_action_and_large_beta_gives_own_row():
    states, actions = _d4rl_shaped(episodes=4, length=250)
    rng = np.random.default_rng(5)
    rows = rng.integers(0, len(states), 128)
    pi = rng.uniform(-1, 1, (128, 3)).astype(np.float32)
    index = build_index(states, actions, k=8)
    for beta in (0.5, 2.0):
        res = _nearest(index, jnp.float32(beta), jnp.asarray(states[rows]), jnp.asarray(pi))
        own = np.sum((pi - actions[rows]) ** 2, axis=1)
        assert np.all(np.asarray(res.dist_sq) <= own * (1 + 1e-6))
    res = _nearest(index, jnp.float32(1e4), jnp.asarray(states[rows]), jnp.asarray(pi))
    np.testing.assert_array_equal(np.asarray(res.row), rows)  # beta -> inf: the batch row itself (TD3+BC)
    assert np.asarray(res.certified).all()


def test_vmaps_over_beta_and_compiles_once():
    states, actions = _random_data(n=400)
    index = build_index(states, actions, k=8)
    rows = np.arange(0, 400, 5)
    qs, qa = jnp.asarray(states[rows]), jnp.asarray(actions[rows] * 0.5)
    betas = jnp.array([0.5, 1.0, 3.0])
    batched = jax.jit(jax.vmap(lambda b: nearest(index, b, qs, qa).row))(betas)
    for i, b in enumerate([0.5, 1.0, 3.0]):
        keys = np.hstack([np.float32(b) * states, actions])
        ref = KDTree(keys).query(np.hstack([np.float32(b) * states[rows], qa]))[1]
        np.testing.assert_array_equal(np.asarray(batched[i]), ref)


def test_index_memory_and_bad_input():
    states, actions = _random_data(n=100)
    index = build_index(states, actions, k=8)
    nbytes = index_nbytes(index)
    assert nbytes["candidates"] == 100 * 8 * 4 and nbytes["states"] == (100 + MAX_BLOCK) * 5 * 4
    assert nbytes["total"] == sum(v for k, v in nbytes.items() if k != "total")
    small = build_index(states[:5], actions[:5], k=8)  # k >= N: every row is a candidate, always certified
    res = _nearest(small, jnp.float32(2.0), jnp.asarray(states[:5]), jnp.asarray(actions[:5] * 0))
    assert np.asarray(res.certified).all()
    with pytest.raises(ConfigError, match="k must be"):
        build_index(states, actions, k=0)
    with pytest.raises(ConfigError, match="same N"):
        build_index(states, actions[:50])


def test_matmul_scan_is_exact_where_certified():
    from offreg.agents.neighbours import _matmul_search

    states, actions = _random_data(n=3000, ds=6, da=3, seed=7)
    rng = np.random.default_rng(8)
    qs = rng.normal(size=(64, 6)).astype(np.float32)
    qa = rng.uniform(-1, 1, (64, 3)).astype(np.float32)
    index = build_index(states, actions, k=4)
    row, d, done = _matmul_search(index, jnp.float32(1.5), jnp.asarray(qs), jnp.asarray(qa),
                                  jnp.full(64, 3000, jnp.int32), jnp.full(64, jnp.inf), block=512)
    ref_d, ref_i = KDTree(np.hstack([np.float32(1.5) * states, actions])).query(np.hstack([np.float32(1.5) * qs, qa]))
    done = np.asarray(done)
    assert done.mean() > 0.9
    np.testing.assert_array_equal(np.asarray(row)[done], ref_i[done])
    np.testing.assert_allclose(np.sqrt(np.asarray(d))[done], ref_d[done], rtol=1e-5)
    assert np.all(np.sqrt(np.asarray(d, np.float64)) >= ref_d * (1 - 1e-5))  # elsewhere a valid upper bound
    # a near-tie (two rows at almost the same distance) is never certified: the slab scan decides it
    twin = np.vstack([states, states[:1] + np.float32(1e-6)]), np.vstack([actions, actions[:1]])
    index2 = build_index(*twin, k=4)
    q = twin[0][:1].copy()
    _, _, done2 = _matmul_search(index2, jnp.float32(1.5), jnp.asarray(q), jnp.asarray(twin[1][:1]),
                                 jnp.full(1, 3001, jnp.int32), jnp.full(1, jnp.inf), block=512)
    assert not bool(done2[0])


def test_under_the_engines_seed_vmap_each_member_gets_its_own_exact_answer():
    """Members whose queries take different branches (none open / many open / a few open) agree with
    unbatched calls and with scipy when the branches are OR-reduced over the named seed axis."""
    from offreg.seeds import SEED_AXIS

    states, actions = _random_data(n=3000, ds=4, da=2, seed=3)
    index = build_index(states, actions, k=8)
    rng = np.random.default_rng(4)
    rows = rng.integers(0, len(states), (3, 96))
    q_actions = np.stack([
        actions[rows[0]],  # the row's own action: every query certified
        rng.uniform(-1, 1, (96, 2)),  # far from the data: many open queries, the matmul scan runs
        np.where(np.arange(96)[:, None] < 12, rng.uniform(-1, 1, (96, 2)), actions[rows[2]]),  # a few open
    ]).astype(np.float32)
    qs, qa = jnp.asarray(states[rows]), jnp.asarray(q_actions)
    fn = lambda s, a: nearest(index, jnp.float32(0.3), s, a, chunk=8, block=256)  # noqa: E731
    batched = jax.jit(jax.vmap(fn, axis_name=SEED_AXIS))(qs, qa)
    for m in range(3):
        single = jax.jit(fn)(qs[m], qa[m])
        np.testing.assert_array_equal(np.asarray(batched.row[m]), np.asarray(single.row))
        keys = np.hstack([np.float32(0.3) * states, actions])
        ref_d = KDTree(keys).query(np.hstack([np.float32(0.3) * states[rows[m]], q_actions[m]]))[0]
        np.testing.assert_allclose(np.sqrt(np.asarray(batched.dist_sq[m], np.float64)), ref_d, rtol=1e-5, atol=1e-6)
    cert = np.asarray(batched.certified).mean(axis=1)
    assert cert[0] == 1.0 and cert[1] < 0.75 and 0.75 < cert[2] < 1.0, cert
