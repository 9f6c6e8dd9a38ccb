"""A2PR: one update against an independent NumPy computation, gradient paths and invariants."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_reference import adam_step, close, fd_grad, np_actor, np_critic, np_value, to_np, toy_dataset

from offreg.agents.a2pr import A2PR, VAE
from offreg.agents.names import get_spec
from offreg.agents.regularizers import CriticFns
from offreg.agents.td3 import TD3Agent, TD3Config
from offreg.data import DatasetInfo, from_arrays
from offreg.errors import ConfigError


def np_vae(p, s, a, noise):
    """BCQ's VAE: returns (reconstruction, mean, std)."""
    p = p["params"]

    def lin(name, x):
        return x @ np.asarray(p[name]["Dense_0"]["kernel"], np.float64) + np.asarray(p[name]["Dense_0"]["bias"])

    n_hidden = len([k for k in p if k.startswith("enc_")])
    x = np.concatenate([s, a], axis=-1)
    for i in range(n_hidden):
        x = np.maximum(lin(f"enc_{i}", x), 0)
    mean, std = lin("mean", x), np.exp(np.clip(lin("log_std", x), -4, 15))
    y = np.concatenate([s, mean + std * noise], axis=-1)
    for i in range(n_hidden):
        y = np.maximum(lin(f"dec_{i}", y), 0)
    return np.tanh(lin("out", y)), mean, std


def A2PRConfig(**fields):
    return get_spec("a2pr").default_config().replace(**fields)


A2PRAgent = TD3Agent
TINY = dict(
    actor_hidden_dims=(6, 6, 6), critic_hidden_dims=(6, 6, 6, 6), value_hidden_dims=(6, 6, 6, 6),
    vae_hidden_dims=(7, 7), batch_size=16,
)


def test_one_update_matches_numpy():
    gamma, mask, vae_weight = 0.995, 0.7, 1.3
    cfg = A2PRConfig(alpha=2.5, discount=gamma, mask=mask, vae_weight=vae_weight, **TINY)
    ds = toy_dataset()
    pds = cfg.prepare(ds)
    agent = A2PRAgent.create(cfg, ds, jax.random.PRNGKey(0))
    batch = jax.tree_util.tree_map(lambda x: x[:16], pds.transitions)
    update = jax.jit(lambda a, b, k: a.update(b, k))
    for i in range(3):  # step 4: an actor step, every Adam state already non-trivial
        agent, _ = update(agent, batch, jax.random.PRNGKey(10 + i))
    key = jax.random.PRNGKey(42)
    noise_key, vae_key, actor_key = jax.random.split(key, 3)
    s, a, r, s2, d = (np.asarray(x, np.float64) for x in (batch.observations, batch.actions, batch.rewards,
                                                           batch.next_observations, batch.terminals))
    B, Z = 16, 4

    # --- critic (TD3) ---
    eps = np.asarray(jax.random.normal(noise_key, a.shape, jnp.float32), np.float64)
    next_a = np.clip(np_actor(to_np(agent.actor.target_params), s2) + np.clip(0.2 * eps, -0.5, 0.5), -1, 1)
    y_tgt = r + gamma * (1 - d) * np_critic(to_np(agent.critic.target_params), s2, next_a).min(0)

    def critic_loss(p):
        return float(np.sum(np.mean((np_critic(p, s, a) - y_tgt) ** 2, axis=1)))

    critic0 = to_np(agent.critic.params)
    critic1 = adam_step(critic0, fd_grad(critic_loss, critic0), agent.critic.opt_state, 3e-4)
    # shift V's output bias so that about half of the dataset actions have a positive advantage
    vp = agent.reg_state.value.params
    gap = np.median(np_critic(critic1, s, a)[0] - np_value(to_np(vp), s))
    last = vp["params"]["MLP_0"]["Linear_4"]["Dense_0"]
    last["bias"] = last["bias"] + jnp.float32(gap)
    agent = agent.replace(reg_state=agent.reg_state._replace(value=agent.reg_state.value.replace(params=vp)))

    new, m = update(agent, batch, key)
    assert float(m["actor_updated"]) == 1.0
    np.testing.assert_allclose(float(m["critic_loss"]), critic_loss(critic0), rtol=1e-5)
    close(new.critic.params, critic1, atol=1e-6)

    # --- value: min(online-after-update, target) TD targets, MSE, Adam 3e-4; V_old kept ---
    y_on = r + gamma * (1 - d) * np_critic(critic1, s2, next_a).min(0)
    y_v = np.minimum(y_on, y_tgt)
    st = agent.reg_state
    value0 = to_np(st.value.params)
    v_old = np_value(value0, s)

    def value_loss(p):
        return float(np.mean((np_value(p, s) - y_v) ** 2))

    np.testing.assert_allclose(float(m["v_target"]), y_v.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(m["value_loss"]), value_loss(value0), rtol=1e-5)
    close(new.reg_state.value.params, adam_step(value0, fd_grad(value_loss, value0), st.value.opt_state, 3e-4), 1e-6)
    close(new.reg_state.prev_value_params, value0, 0.0)

    # --- VAE: positive-advantage reconstruction (strict >, Q1 of the updated critic, V_old) + 0.5 KL ---
    xi = np.asarray(jax.random.normal(vae_key, (B, Z), jnp.float32), np.float64)
    weight = vae_weight * (np_critic(critic1, s, a)[0] > v_old)
    assert 0 < weight.mean() < vae_weight  # both cases occur

    def vae_parts(p):
        recon, mu, std = np_vae(p, s, a, xi)
        rec = np.mean(weight[:, None] * (recon - a) ** 2)
        kl = np.mean(-0.5 * (1 + np.log(std**2) - mu**2 - std**2))
        return rec, kl

    vae0 = to_np(st.vae.params)
    rec, kl = vae_parts(vae0)
    np.testing.assert_allclose([float(m["vae_recon_loss"]), float(m["vae_kl"]), float(m["vae_loss"])],
                               [rec, kl, rec + 0.5 * kl], rtol=1e-5, atol=1e-7)
    vae1 = adam_step(vae0, fd_grad(lambda p: float(sum(np.multiply(vae_parts(p), (1, 0.5)))), vae0),
                     st.vae.opt_state, 1e-3)
    close(new.reg_state.vae.params, vae1, atol=2e-6)

    # --- actor: -lambda Q + mask * OR-gate * (pi - a_bar)^2, VAE branch differentiable in pi ---
    xi2 = np.asarray(jax.random.normal(actor_key, (B, Z), jnp.float32), np.float64)
    actor0 = to_np(agent.actor.params)
    pi = np_actor(actor0, s)
    a_vae = np_vae(vae1, s, pi, xi2)[0]
    q_vae, q_data = np_critic(critic1, s, a_vae)[0], np_critic(critic1, s, a)[0]
    take_vae = q_vae >= q_data
    gate = mask * np.logical_or(q_vae >= v_old, q_data > v_old)
    assert 0 < take_vae.mean() < 1
    q_pi = np_critic(critic1, s, pi)[0]
    lam = 2.5 / np.mean(np.abs(q_pi))
    target = np.where(take_vae[:, None], a_vae, a)
    bc = np.mean(gate[:, None] * (pi - target) ** 2)
    np.testing.assert_allclose(float(m["bc_loss"]), bc, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(m["lambda"]), lam, rtol=1e-4)
    np.testing.assert_allclose(float(m["actor_loss"]), -lam * q_pi.mean() + bc, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(m["gate_fraction"]), np.mean(gate > 0))
    np.testing.assert_allclose(float(m["vae_target_fraction"]), take_vae.mean())

    def actor_loss(p):  # selection and gate are piecewise constant; the VAE branch follows pi
        pi_p = np_actor(p, s)
        tgt = np.where(take_vae[:, None], np_vae(vae1, s, pi_p, xi2)[0], a)
        return float(-lam * np.mean(np_critic(critic1, s, pi_p)[0]) + np.mean(gate[:, None] * (pi_p - tgt) ** 2))

    close(new.actor.params, adam_step(actor0, fd_grad(actor_loss, actor0), agent.actor.opt_state, 3e-4), 1e-6)


def _reg_case(seed=3, mask=0.7):
    """A regularizer-level case with a hand-written critic: Q_i(s, a) = -(i+1) ||a - c(s)||^2 + s_0."""
    rng = np.random.default_rng(seed)
    B, S, A = 32, 3, 2
    obs = jnp.asarray(rng.normal(size=(B, S)), jnp.float32)
    acts = jnp.asarray(rng.uniform(-1, 1, (B, A)), jnp.float32)
    batch = from_arrays(obs, acts, rng.normal(size=B), obs, np.zeros(B),
                        DatasetInfo("toy", "file", None, S, A, B)).transitions

    def q(o, a):
        c = jnp.tanh(o[:, :A])
        return jnp.stack([-(i + 1.0) * jnp.sum((a - c) ** 2, -1) + o[:, 0] for i in range(2)])

    critic = CriticFns(q=q, q_target=q, next_actions=acts)
    functions = A2PR(value_hidden_dims=(8,), vae_hidden_dims=(16, 16)).build(TD3Config(discount=0.99))
    coefs = {"mask": jnp.float32(mask), "vae_weight": jnp.float32(1.0)}
    reg = functions._replace(loss=lambda st, o, p, b, c, k: functions.loss(st, o, p, b, c, coefs, (), k))
    ds = from_arrays(obs, acts, np.zeros(B), obs, np.zeros(B), DatasetInfo("toy", "file", None, S, A, B))
    state = reg.init(jax.random.PRNGKey(0), ds)
    pi = jnp.asarray(rng.uniform(-1, 1, (B, A)), jnp.float32)
    return reg, state, batch, critic, pi


def test_actor_gradient_keeps_the_vae_branch():
    reg, state, batch, critic, pi = _reg_case()
    key = jax.random.PRNGKey(7)
    ours = np.asarray(jax.grad(lambda p: reg.loss(state, batch.observations, p, batch, critic, key)[0])(pi), np.float64)
    s, a, p0 = (np.asarray(x, np.float64) for x in (batch.observations, batch.actions, pi))
    xi = np.asarray(jax.random.normal(key, (32, 4), jnp.float32), np.float64)
    vae = to_np(state.vae.params)
    a_vae = np_vae(vae, s, p0, xi)[0]
    c = np.tanh(s[:, :2])
    qf = lambda act: -np.sum((act - c) ** 2, -1) + s[:, 0]
    v_old = np_value(to_np(state.prev_value_params), s)
    take = qf(a_vae) >= qf(a)
    gate = 0.7 * np.logical_or(qf(a_vae) >= v_old, qf(a) > v_old)

    def loss(p, detach):
        av = a_vae if detach else np_vae(vae, s, p, xi)[0]
        return float(np.mean(gate[:, None] * (p - np.where(take[:, None], av, a)) ** 2))

    with_branch = fd_grad(lambda p: loss(p, False), p0)
    detached = fd_grad(lambda p: loss(p, True), p0)
    np.testing.assert_allclose(ours, with_branch, rtol=1e-4, atol=1e-7)
    assert np.abs(with_branch - detached).max() > 1e-5  # the two gradients really differ ...
    assert not np.allclose(ours, detached, rtol=1e-4, atol=1e-7)  # ... and ours is not the detached one
    assert take.any() and (~take).any()


def test_gate_is_an_or_and_targets_are_candidates():
    reg, state, batch, critic, pi = _reg_case(mask=0.7)
    # V = -inf-like: every sample has both advantages positive -> gate must be mask (OR), not 2 * mask
    state = state._replace(prev_value_params=jax.tree_util.tree_map(jnp.zeros_like, state.prev_value_params))
    shift = jax.tree_util.tree_map(jnp.zeros_like, state.prev_value_params)
    shift["params"]["MLP_0"]["Linear_1"]["Dense_0"]["bias"] = jnp.full((1,), -100.0)
    state = state._replace(prev_value_params=shift)
    key = jax.random.PRNGKey(1)
    bc, m = reg.loss(state, batch.observations, pi, batch, critic, key)
    assert float(m["gate_fraction"]) == 1.0
    recon = nn.Module.apply(VAE((16, 16), 4, 2), state.vae.params, batch.observations, pi,
                            jax.random.normal(key, (32, 4)))[0]
    q = lambda x: critic.q(batch.observations, x)[0]
    tgt = jnp.where((q(recon) >= q(batch.actions))[:, None], recon, batch.actions)
    np.testing.assert_allclose(float(bc), 0.7 * float(jnp.mean((pi - tgt) ** 2)), rtol=1e-5)
    # V = +large: no candidate has a non-negative advantage -> no BC at all
    shift["params"]["MLP_0"]["Linear_1"]["Dense_0"]["bias"] = jnp.full((1,), 100.0)
    bc, m = reg.loss(state._replace(prev_value_params=shift), batch.observations, pi, batch, critic, key)
    assert float(bc) == 0.0 and float(m["gate_fraction"]) == 0.0


def test_default_networks_are_the_deeper_ones():
    cfg = A2PRConfig()
    agent = A2PRAgent.create(cfg, toy_dataset(n=20, obs_dim=5, act_dim=3), jax.random.PRNGKey(0))
    shapes = lambda p: [x.shape for x in jax.tree_util.tree_leaves(p) if x.ndim >= 2]
    assert shapes(agent.actor.params) == [(5, 256), (256, 256), (256, 256), (256, 3)]
    kernels = [x.shape for x in jax.tree_util.tree_leaves(agent.critic.params) if x.ndim == 3]
    assert kernels == [(2, 8, 256)] + [(2, 256, 256)] * 3 + [(2, 256, 1)]
    assert shapes(agent.reg_state.value.params) == [(5, 256)] + [(256, 256)] * 3 + [(256, 1)]
    vae = agent.reg_state.vae.params["params"]
    assert vae["enc_0"]["Dense_0"]["kernel"].shape == (8, 750) and vae["dec_1"]["Dense_0"]["kernel"].shape == (750, 750)
    assert vae["mean"]["Dense_0"]["kernel"].shape == (750, 6) and vae["dec_0"]["Dense_0"]["kernel"].shape == (11, 750)
    # learning rates: value 3e-4 and VAE 1e-3 are read by the regularizer from the config
    assert (cfg.value_lr, cfg.vae_lr, cfg.kl_weight) == (3e-4, 1e-3, 0.5)


def test_config_validation_and_presets():
    with pytest.raises(ConfigError, match="vae_lr"):
        A2PR(vae_lr=0.0)
    with pytest.raises(ConfigError, match="vae_lr"):
        A2PRConfig(vae_lr=0.0)
    from offreg.agents.presets import resolve_config_with_sources

    cfg, src = resolve_config_with_sources("a2pr", "offreg/hopper-medium-v0")
    assert (cfg.alpha, cfg.vae_weight, cfg.mask, cfg.discount) == (2.5, 1.0, 0.4, 0.995)
    cfg, _ = resolve_config_with_sources("a2pr", "walker2d-medium-replay-v2")
    assert (cfg.vae_weight, cfg.mask, cfg.discount) == (1.5, 1.2, 0.995)
    cfg, _ = resolve_config_with_sources("a2pr", "halfcheetah-medium-expert-v2")
    assert (cfg.alpha, cfg.mask) == (40.0, 15.0)
    cfg, src = resolve_config_with_sources("a2pr", "offreg/halfcheetah-medium-replay-v0")  # bundled: alpha 2.5
    assert (cfg.alpha, cfg.vae_weight, cfg.mask, cfg.discount) == (2.5, 1.5, 0.8, 0.995)
    assert "offreg choice" in src["alpha"]
