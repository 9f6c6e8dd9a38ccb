"""PRDC: one update against an independent NumPy computation, and the regularizer's properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_reference import adam_step, close, fd_grad, np_actor, np_critic, to_np, toy_dataset
from scipy.spatial import KDTree

from offreg.agents.prdc import PRDC
from offreg.agents.regularizers import BC
from offreg.agents.td3 import TD3Agent, TD3Config
from offreg.errors import ConfigError

TINY = dict(actor_hidden_dims=(8, 8), critic_hidden_dims=(8, 8), batch_size=16)
TINY_SEARCH = dict(index_leaf_size=4, search_chunk=8)


def PRDCConfig(beta=2.0, search=TINY_SEARCH, **backbone):
    return TD3Config(regularizer=PRDC(beta=beta, **search), **backbone)


def test_one_update_matches_numpy():
    cfg = PRDCConfig(alpha=2.5, beta=2.0, **TINY)
    ds = toy_dataset()
    pds = cfg.prepare(ds)
    index = TD3Agent.context(cfg, ds)
    agent = TD3Agent.create(cfg, ds, jax.random.PRNGKey(0), index)
    assert agent.reg_state == () and float(agent.coefs["beta"]) == 2.0  # the index is not agent state
    batch = jax.tree_util.tree_map(lambda x: x[:16], pds.transitions)
    update = jax.jit(lambda a, b, k: a.update(b, k, index))
    for i in range(3):  # step 4 is an actor step with non-trivial Adam states
        agent, _ = update(agent, batch, jax.random.PRNGKey(10 + i))
    key = jax.random.PRNGKey(42)
    new, m = update(agent, batch, key)
    assert float(m["actor_updated"]) == 1.0

    s, a, r, s2, d = (np.asarray(x, np.float64) for x in (batch.observations, batch.actions, batch.rewards,
                                                           batch.next_observations, batch.terminals))
    # --- critic target and loss ---
    noise_key = jax.random.split(key, 3)[0]
    eps = np.asarray(jax.random.normal(noise_key, a.shape, jnp.float32), np.float64)
    next_a = np.clip(np_actor(to_np(agent.actor.target_params), s2) + np.clip(0.2 * eps, -0.5, 0.5), -1, 1)
    y = r + 0.99 * (1 - d) * np_critic(to_np(agent.critic.target_params), s2, next_a).min(0)
    np.testing.assert_allclose(float(m["target_q"]), y.mean(), rtol=1e-5, atol=1e-6)

    def critic_loss(p):
        return float(np.sum(np.mean((np_critic(p, s, a) - y) ** 2, axis=1)))

    critic0 = to_np(agent.critic.params)
    np.testing.assert_allclose(float(m["critic_loss"]), critic_loss(critic0), rtol=1e-5)
    critic1 = adam_step(critic0, fd_grad(critic_loss, critic0), agent.critic.opt_state, 3e-4)
    close(new.critic.params, critic1, atol=1e-6)

    # --- actor: nearest [beta s, pi(s)] over the whole dataset (scipy), then -lambda Q + DC ---
    actor0 = to_np(agent.actor.params)
    pi = np_actor(actor0, s)
    S, A = np.asarray(pds.transitions.observations), np.asarray(pds.transitions.actions)
    _, j = KDTree(np.hstack([np.float32(2.0) * S, A])).query(np.hstack([2.0 * s, pi]))
    a_nn = A[j].astype(np.float64)
    q_pi = np_critic(critic1, s, pi)[0]
    lam = 2.5 / np.mean(np.abs(q_pi))
    np.testing.assert_allclose(float(m["lambda"]), lam, rtol=1e-4)
    np.testing.assert_allclose(float(m["dc_loss"]), np.mean((pi - a_nn) ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(m["actor_loss"]), -lam * q_pi.mean() + np.mean((pi - a_nn) ** 2), rtol=1e-4)

    def actor_loss(p):  # lambda and the neighbour target are constants
        pi_p = np_actor(p, s)
        return float(-lam * np.mean(np_critic(critic1, s, pi_p)[0]) + np.mean((pi_p - a_nn) ** 2))

    actor1 = adam_step(actor0, fd_grad(actor_loss, actor0), agent.actor.opt_state, 3e-4)
    close(new.actor.params, actor1, atol=1e-6)
    # --- targets ---
    close(new.actor.target_params, jax.tree_util.tree_map(
        lambda t, o: 0.005 * o + 0.995 * t, to_np(agent.actor.target_params), actor1), atol=1e-7)


def _reg_inputs(seed=1):
    ds = toy_dataset(n=200, seed=seed)
    pds = PRDCConfig().prepare(ds)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 200, 64)
    batch = jax.tree_util.tree_map(lambda x: x[rows], pds.transitions)
    pi = jnp.asarray(rng.uniform(-1, 1, (64, 2)), jnp.float32)
    return pds, batch, pi


def test_dc_loss_never_exceeds_bc_loss_and_large_beta_is_td3bc():
    pds, batch, pi = _reg_inputs()
    bc = BC().build(None)
    bc_loss, _ = bc.loss(bc.init(None, pds), batch.observations, pi, batch, None, {}, (), None)
    reg = PRDC(2.0, index_leaf_size=4, search_chunk=16).build(None)
    index = reg.context(pds)
    loss = jax.jit(lambda beta, p: reg.loss((), batch.observations, p, batch, None, {"beta": beta}, index, None))
    own = np.sqrt(np.sum((np.asarray(pi) - np.asarray(batch.actions)) ** 2, axis=1))
    for beta in (0.1, 1.0, 2.0, 10.0):  # beta reaches the loss as an array coefficient: one compiled loss
        dc, m = loss(jnp.float32(beta), pi)
        assert float(dc) <= float(bc_loss) + 1e-7
        assert float(m["nn_distance"]) <= own.mean() + 1e-6  # never farther than the batch row's own pair
    assert loss._cache_size() == 1
    dc, m = loss(jnp.float32(1e5), pi)
    np.testing.assert_allclose(float(dc), float(bc_loss), rtol=1e-6)  # beta -> inf: TD3+BC
    assert float(m["certified_fraction"]) == 1.0


def test_dc_gradient_is_that_of_a_constant_target():
    pds, batch, pi = _reg_inputs(seed=2)
    reg = PRDC(2.0, index_leaf_size=4).build(None)
    index = reg.context(pds)
    g = jax.grad(lambda p: reg.loss((), batch.observations, p, batch, None, {"beta": jnp.float32(2.0)}, index,
                                    None)[0])(pi)
    S, A = np.asarray(pds.transitions.observations), np.asarray(pds.transitions.actions)
    _, j = KDTree(np.hstack([np.float32(2.0) * S, A])).query(
        np.hstack([np.float32(2.0) * np.asarray(batch.observations), np.asarray(pi)]))
    np.testing.assert_allclose(np.asarray(g), 2 * (np.asarray(pi) - A[j]) / pi.size, rtol=1e-5, atol=1e-8)


def test_config_validation_and_presets():
    with pytest.raises(ConfigError, match="k must be 1"):
        PRDC(k=2)
    with pytest.raises(ConfigError, match="beta"):
        PRDC(beta=0.0)
    with pytest.raises(ConfigError, match="beta"):
        TD3Config(regularizer=PRDC()).replace(beta=-1.0)
    from offreg.agents.presets import resolve_config_with_sources

    cfg, src = resolve_config_with_sources("prdc", "d4rl/halfcheetah-medium-v2")
    assert (cfg.alpha, cfg.regularizer.beta) == (40.0, 2.0) and "README" in src["alpha"]
    cfg, src = resolve_config_with_sources("prdc", "offreg/halfcheetah-medium-v0")  # bundled: offreg's choice
    assert (cfg.alpha, cfg.regularizer.beta) == (2.5, 2.0) and "offreg choice" in src["alpha"]
    cfg, _ = resolve_config_with_sources("prdc", "hopper-medium-replay-v2")
    assert (cfg.alpha, cfg.regularizer.beta) == (2.5, 2.0)
    cfg, _ = resolve_config_with_sources("prdc", "antmaze-medium-play-v2")
    assert (cfg.alpha, cfg.regularizer.beta, cfg.reward_transform, cfg.reward_scale, cfg.reward_shift) == (
        7.5, 7.5, "antmaze", 10000.0, -1.0)


@pytest.mark.slow  # the engine's seed vmap is checked for every agent by test_engine; the search's by test_neighbours
def test_each_vmapped_seed_equals_its_single_run_and_no_index_in_the_agent():
    import offreg

    ds = toy_dataset()
    kw = dict(steps=6, eval_every=0, log_every=6, progress=False,
              overrides={k: (list(v) if isinstance(v, tuple) else v) for k, v in {**TINY, **TINY_SEARCH}.items()})
    many = offreg.train("prdc", ds, seeds=[0, 1], **kw)
    single = offreg.train("prdc", ds, seeds=[1], **kw)
    # every array of the agent has the seed axis: nothing of the dataset's size is held per seed or at all
    for leaf in jax.tree_util.tree_leaves(many.agents):
        assert leaf.ndim == 0 or leaf.shape[0] == 2, leaf.shape
        assert max(leaf.shape, default=0) < len(ds), leaf.shape
    for x, y in zip(jax.tree_util.tree_leaves(many.agent(1)), jax.tree_util.tree_leaves(single.agent(1)), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_checkpoint_is_the_size_of_td3bc(tmp_path):
    """A PRDC checkpoint holds no index: within 1% of a TD3+BC checkpoint of the same networks."""
    import offreg

    ds = toy_dataset(n=2000)
    kw = dict(steps=4, eval_every=0, log_every=2, progress=False)
    sizes = {}
    for name in ("td3bc", "prdc"):
        offreg.train(name, ds, out_dir=tmp_path / name, **kw)
        (ckpt,) = (tmp_path / name / "checkpoints").glob("step_*.msgpack")
        sizes[name] = ckpt.stat().st_size
    assert abs(sizes["prdc"] - sizes["td3bc"]) <= 0.01 * sizes["td3bc"], sizes
    loaded = offreg.load_agent(tmp_path / "prdc")  # acts without its dataset
    obs = jnp.asarray(ds.transitions.observations[:5])
    assert loaded.act(obs).shape == (5, ds.info.act_dim)
