"""PRDC's neighbour search against scipy's exact KD-tree, on every query."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import KDTree

from offreg.agents.neighbour_index import MAX_BLOCK, build_index, index_nbytes
from offreg.agents.neighbour_scan import brute_force_nearest
from offreg.agents.neighbours import _first_bound, nearest
from offreg.errors import ConfigError

_nearest = jax.jit(nearest, static_argnames=("capacity", "chunk", "block"))


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


def _check_against_kdtree(states, actions, q_rows, q_actions, beta, leaf_size=8, capacity=2048, chunk=16):
    index = build_index(states, actions, leaf_size=leaf_size)
    res = _nearest(index, jnp.float32(beta), jnp.asarray(states[q_rows]), jnp.asarray(q_actions),
                   capacity=capacity, chunk=chunk, block=512)
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


@pytest.mark.parametrize("capacity, paths", [(16384, "batched"), (2048, "wider passes"), (256, "full scan")])
def test_random_data_matches_kdtree_on_every_query_on_every_path(capacity, paths):
    states, actions = _random_data()
    rng = np.random.default_rng(2)
    rows = rng.integers(0, len(states), 256)
    q_actions = np.clip(actions[rows] + rng.normal(scale=0.5, size=actions[rows].shape), -1, 1).astype(np.float32)
    res, unique = _check_against_kdtree(states, actions, rows, q_actions, beta=0.3, capacity=capacity, chunk=8)
    fits, chunks = np.asarray(res.certified), int(res.fallback_chunks)
    if paths == "batched":
        assert fits.all() and chunks == 0
    elif paths == "wider passes":  # some queries did not fit the first search; the wider one answered them all
        assert 0 < fits.mean() < 1 and chunks == 0, (fits.mean(), chunks)
    else:  # some queries did not fit even the wider search: the last-resort scan answered them
        assert fits.mean() < 0.5 and chunks > 0, (fits.mean(), chunks)
    assert unique.mean() > 0.99


def _tiled(episodes, length, rng):
    """Dense data like a tiled D4RL file: 10 noisy copies of every row (many near-ties)."""
    base_s, base_a = _d4rl_shaped(episodes=episodes, length=length, seed=6)
    states = np.concatenate([base_s] + [base_s + rng.normal(scale=0.01, size=base_s.shape) for _ in range(9)])
    actions = np.clip(np.concatenate([base_a] + [base_a + rng.normal(scale=0.01, size=base_a.shape)
                                                for _ in range(9)]), -1, 1)
    return states.astype(np.float32), actions.astype(np.float32)


def test_dense_tiled_data_matches_kdtree():
    rng = np.random.default_rng(6)
    states, actions = _tiled(4, 250, rng)
    rows = rng.integers(0, len(states), 256)
    for q_actions in (0.05 * rng.standard_normal((256, 3)), actions[rows] + 0.1 * rng.standard_normal((256, 3))):
        _check_against_kdtree(states, actions, rows, q_actions.astype(np.float32), beta=2.0)


def test_hint_actions_tighten_the_first_bound_and_never_change_the_answer():
    """PRDC passes the batch's own actions as hints: the first bound then never exceeds the distance to
    the query's own row, and the answer (any hint, even a useless one) stays the exact one."""
    rng = np.random.default_rng(6)
    states, actions = _tiled(8, 500, rng)
    rows = rng.integers(0, len(states), 256)
    pi = np.clip(actions[rows] + rng.normal(scale=0.3, size=(256, 3)), -1, 1).astype(np.float32)
    index = build_index(states, actions)
    beta, qs, qa = jnp.float32(2.0), jnp.asarray(states[rows]), jnp.asarray(pi)
    own = np.sum((pi - actions[rows]) ** 2, axis=1)
    bound = jax.jit(_first_bound)
    _, d_plain = bound(index, beta, qs, qa, None)
    r_hint, d_hint = bound(index, beta, qs, qa, jnp.asarray(actions[rows]))
    d_hint, d_plain = np.asarray(d_hint), np.asarray(d_plain)
    assert np.all(d_hint <= own * (1 + 1e-6))
    assert np.all(d_hint <= d_plain) and np.mean(d_hint < d_plain) > 0.03
    keys = np.hstack([2.0 * states, actions])
    np.testing.assert_allclose(np.sum((keys[np.asarray(r_hint)] - np.hstack([2.0 * states[rows], pi])) ** 2, 1),
                               d_hint, rtol=1e-5)  # the bound is a real row's distance
    plain = _nearest(index, beta, qs, qa)
    ref_r, ref_d = brute_force_nearest(index, beta, qs, qa)
    for hint in (actions[rows], rng.uniform(-1, 1, (256, 3)).astype(np.float32)):
        res = _nearest(index, beta, qs, qa, hint_actions=jnp.asarray(hint))
        np.testing.assert_array_equal(np.asarray(res.row), np.asarray(ref_r))
        np.testing.assert_array_equal(np.asarray(res.dist_sq), np.asarray(ref_d))
    hinted = _nearest(index, beta, qs, qa, hint_actions=jnp.asarray(actions[rows]))
    assert float(hinted.leaves_per_query) < float(plain.leaves_per_query)


@pytest.mark.parametrize("beta, ds, da", [(0.1, 11, 3), (2.0, 11, 3), (7.5, 11, 3), (2.0, 17, 6)])
def test_d4rl_shaped_data_matches_kdtree(beta, ds, da):
    """Also with HalfCheetah's 17 + 6 coordinates, whose boxes are stored in two chunks."""
    states, actions = _d4rl_shaped(ds=ds, da=da)
    rng = np.random.default_rng(3)
    rows = rng.integers(0, len(states), 256)
    q_actions = np.clip(actions[rows] + rng.normal(scale=0.3, size=actions[rows].shape), -1, 1).astype(np.float32)
    _check_against_kdtree(states, actions, rows, q_actions, beta=beta)


def test_more_queries_than_packed_pairs_hold_are_searched_a_group_at_a_time(monkeypatch):
    """With 13 bits per packed (query, node) pair and a 7-level tree (8 bits per node), groups of 31
    queries: 40 queries go in 2 groups (each of the two tree searches runs one more loop), and every
    query's answer must still be scipy's."""
    import offreg.agents.neighbours as nb

    states, actions = _d4rl_shaped(episodes=2, length=500)
    rng = np.random.default_rng(8)
    rows = rng.integers(0, len(states), 40)
    q_actions = np.clip(actions[rows] + rng.normal(scale=0.3, size=(40, 3)), -1, 1).astype(np.float32)
    index = build_index(states, actions)
    args = (index, jnp.float32(2.0), jnp.asarray(states[rows]), jnp.asarray(q_actions))
    loops = lambda: str(jax.make_jaxpr(lambda *a: nb.nearest(*a))(*args)).count("scan[")  # noqa: E731 (a fresh trace)
    ungrouped = loops()
    monkeypatch.setattr(nb, "_PAIR_BITS", 13)
    assert nb._shape(index)[0] == 7 and (2**13 - 1) >> 8 == 31 and loops() == ungrouped + 2 * 1
    _, unique = _check_against_kdtree(states, actions, rows, q_actions, beta=2.0, capacity=1024)
    assert unique.mean() > 0.99


def test_ties_are_broken_by_lowest_index():
    states, actions = _random_data(n=300)
    states = np.concatenate([states, states[:50]])  # exact duplicate rows 300..349 of rows 0..49
    actions = np.concatenate([actions, actions[:50]])
    rows = np.arange(300, 350)  # query the duplicates with their own actions: distance 0, twice
    index = build_index(states, actions, leaf_size=4)
    res = _nearest(index, jnp.float32(2.0), jnp.asarray(states[rows]), jnp.asarray(actions[rows]))
    np.testing.assert_array_equal(np.asarray(res.row), np.arange(50))
    np.testing.assert_array_equal(np.asarray(res.dist_sq), 0.0)
    bf_row, _ = jax.jit(brute_force_nearest, static_argnums=4)(
        index, jnp.float32(2.0), jnp.asarray(states[rows]), jnp.asarray(actions[rows]), 64)
    np.testing.assert_array_equal(np.asarray(bf_row), np.arange(50))


def test_states_outside_the_dataset_are_searched_exactly():
    states, actions = _random_data(n=500)
    rng = np.random.default_rng(4)
    qs = rng.normal(size=(40, 5)).astype(np.float32)
    qa = rng.uniform(-1, 1, (40, 2)).astype(np.float32)
    index = build_index(states, actions)
    res = _nearest(index, jnp.float32(1.0), jnp.asarray(qs), jnp.asarray(qa), chunk=16)
    ref_d, ref_i = KDTree(np.hstack([states, actions])).query(np.hstack([qs, qa]))
    np.testing.assert_array_equal(np.asarray(res.row), ref_i)
    np.testing.assert_allclose(np.sqrt(np.asarray(res.dist_sq)), ref_d, rtol=1e-5)


def test_neighbour_never_farther_than_own_action_and_large_beta_gives_own_row():
    states, actions = _d4rl_shaped(episodes=4, length=250)
    rng = np.random.default_rng(5)
    rows = rng.integers(0, len(states), 128)
    pi = rng.uniform(-1, 1, (128, 3)).astype(np.float32)
    index = build_index(states, actions)
    for beta in (0.5, 2.0):
        res = _nearest(index, jnp.float32(beta), jnp.asarray(states[rows]), jnp.asarray(pi))
        own = np.sum((pi - actions[rows]) ** 2, axis=1)
        assert np.all(np.asarray(res.dist_sq) <= own * (1 + 1e-6))
    res = _nearest(index, jnp.float32(1e4), jnp.asarray(states[rows]), jnp.asarray(pi))
    np.testing.assert_array_equal(np.asarray(res.row), rows)  # beta -> inf: the batch row itself (TD3+BC)
    assert np.asarray(res.certified).all()


def test_vmaps_over_beta_and_compiles_once():
    states, actions = _random_data(n=400)
    index = build_index(states, actions)
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
    index = build_index(states, actions, leaf_size=8)  # 16 leaves of 7 rows (100 / 16 rounded up)
    nbytes = index_nbytes(index)
    assert index.rows.shape == (16 * 7,) and nbytes["states"] == (16 * 7 + MAX_BLOCK) * 5 * 4
    assert nbytes["lo"] == 31 * 7 * 4 and nbytes["split_dim"] == 15 * 4
    assert nbytes["total"] == sum(v for k, v in nbytes.items() if k != "total")
    for n in (5, 20):  # trees of depth 0 (one leaf) and 2: shallower than one search step
        small = build_index(states[:n], actions[:n], leaf_size=8)
        res = _nearest(small, jnp.float32(2.0), jnp.asarray(states[:n]), jnp.asarray(actions[:n] * 0))
        ref = KDTree(np.hstack([2 * states[:n], actions[:n]])).query(np.hstack([2 * states[:n], 0 * actions[:n]]))[1]
        np.testing.assert_array_equal(np.asarray(res.row), ref)
    with pytest.raises(ConfigError, match="leaf_size must be"):
        build_index(states, actions, leaf_size=1)
    with pytest.raises(ConfigError, match="same N"):
        build_index(states, actions[:50])


def test_tree_is_balanced_and_every_box_holds_its_rows():
    states, actions = _d4rl_shaped(episodes=3, length=333)  # 999 rows: leaves of 7 and 8 rows
    index = jax.tree_util.tree_map(np.asarray, build_index(states, actions, leaf_size=8))
    assert index.lo.shape == (1, 255, 14)  # one chunk: 14 coordinates (docs of NeighbourIndex)
    index = index._replace(lo=index.lo[0], hi=index.hi[0])
    leaves = (index.lo.shape[0] + 1) // 2
    cap = index.rows.shape[0] // leaves
    per_leaf = (index.rows.reshape(leaves, cap) < 999).sum(1)
    assert leaves == 128 and per_leaf.min() >= 7 and per_leaf.max() == 8 == cap
    np.testing.assert_array_equal(np.sort(index.rows[index.rows < 999]), np.arange(999))
    np.testing.assert_array_equal(index.rows[index.positions], np.arange(999))
    np.testing.assert_array_equal(index.states[index.positions], states)
    x = np.hstack([states, actions])[index.rows.clip(0, 998)].reshape(leaves, cap, -1)
    inside = (x >= index.lo[leaves - 1:, None]) & (x <= index.hi[leaves - 1:, None])
    assert np.all(inside.all(-1) | (index.rows.reshape(leaves, cap) == 999))
    p = np.arange(leaves - 1)
    for c in (2 * p + 1, 2 * p + 2):
        assert np.all(index.lo[p] <= index.lo[c]) and np.all(index.hi[p] >= index.hi[c])


@pytest.mark.parametrize("ds, da, chunks", [(4, 2, 1), (15, 4, 2)])
def test_lower_bound_never_exceeds_a_rows_float32_distance(ds, da, chunks):
    """The bound of every node, for any beta, is at most the float32 distance of each row below it, also
    for large coordinates (where the keys' rounding matters), queries inside the boxes and boxes stored
    in chunks (19 coordinates: two of 10, the last padded)."""
    from offreg.agents.neighbours import _lower_bound, _shape

    rng = np.random.default_rng(9)
    states = (rng.normal(size=(600, ds)) * np.resize([1, 1e3, 1e-3, 30], ds)).astype(np.float32)
    actions = rng.uniform(-1, 1, (600, da)).astype(np.float32)
    index = build_index(states, actions, leaf_size=4)
    assert index.lo.shape[0] == chunks and index.lo.shape[0] * index.lo.shape[2] >= ds + da
    depth, leaves, cap = _shape(index)
    rows_np = np.asarray(index.rows)
    for beta in (0.01, 2.0, 300.0):
        q = rng.integers(0, 600, 64)
        qs = states[q] + rng.normal(size=(64, ds)).astype(np.float32) * np.float32(1e-4)
        qa = np.clip(actions[q] + rng.normal(scale=0.05, size=(64, da)), -1, 1).astype(np.float32)
        pad = index.lo.shape[0] * index.lo.shape[2] - ds - da
        keys = np.hstack([qs, qa, np.zeros((64, pad), np.float32)])
        margin = 1.2e-7 * np.abs(keys)
        scale = jnp.asarray([beta] * ds + [1.0] * (da + pad), jnp.float32)
        node = rng.integers(0, 2 * leaves - 1, 64)
        lb = np.asarray(_lower_bound(index, scale, jnp.asarray(keys - margin), jnp.asarray(keys + margin),
                                     jnp.asarray(node, jnp.int32), 1))[:, 0]
        level = np.floor(np.log2(node + 1)).astype(int)
        first_leaf = (node + 1) * 2 ** (depth - level) - 1 - (leaves - 1)
        states_np, actions_np = np.asarray(index.states), np.asarray(index.actions)
        for i in range(64):
            slots = np.arange(first_leaf[i] * cap, (first_leaf[i] + 2 ** (depth - level[i])) * cap)
            slots = slots[rows_np[slots] < 600]
            diff_s = np.float32(beta) * states_np[slots] - np.float32(beta) * qs[i]  # float32, as _sq_dist
            diff_a = actions_np[slots] - qa[i]
            d = np.sum(diff_s * diff_s, axis=1, dtype=np.float32) + np.sum(diff_a * diff_a, axis=1, dtype=np.float32)
            assert lb[i] <= d.min(), (beta, i, lb[i], d.min())


def test_under_the_engines_seed_vmap_each_member_gets_its_own_exact_answer():
    """Members whose queries take different branches (none open / many open / a few open) agree with
    unbatched calls and with scipy under the engine's seed vmap (batched, the branches max-reduced over
    the members), and a batch of one member (searched unbatched) agrees with its unbatched call too."""
    from offreg.seeds import SEED_AXIS

    states, actions = _random_data(n=3000, ds=4, da=2, seed=3)
    index = build_index(states, actions)
    rng = np.random.default_rng(4)
    rows = rng.integers(0, len(states), (3, 96))
    q_actions = np.stack([
        actions[rows[0]],  # the row's own action: every query fits the first pass
        rng.uniform(-1, 1, (96, 2)),  # far from the data: many open queries, the fallbacks run
        np.where(np.arange(96)[:, None] < 12, rng.uniform(-1, 1, (96, 2)), actions[rows[2]]),  # a few open
    ]).astype(np.float32)
    qs, qa = jnp.asarray(states[rows]), jnp.asarray(q_actions)
    fn = lambda s, a: nearest(index, jnp.float32(0.3), s, a, capacity=96, chunk=8, block=256)  # noqa: E731
    batched = jax.jit(jax.vmap(fn, axis_name=SEED_AXIS))(qs, qa)
    for m in range(3):
        single = jax.jit(fn)(qs[m], qa[m])
        np.testing.assert_array_equal(np.asarray(batched.row[m]), np.asarray(single.row))
        keys = np.hstack([np.float32(0.3) * states, actions])
        ref_d = KDTree(keys).query(np.hstack([np.float32(0.3) * states[rows[m]], q_actions[m]]))[0]
        np.testing.assert_allclose(np.sqrt(np.asarray(batched.dist_sq[m], np.float64)), ref_d, rtol=1e-5, atol=1e-6)
    cert = np.asarray(batched.certified).mean(axis=1)
    assert cert[0] == 1.0 and cert[1] < 0.75 and 0.75 < cert[2] < 1.0, cert
    alone = jax.jit(jax.vmap(fn, axis_name=SEED_AXIS))(qs[1:2], qa[1:2])  # the fallbacks run
    for got, want in zip(alone, batched, strict=True):
        np.testing.assert_array_equal(np.asarray(got)[0], np.asarray(want)[1])
