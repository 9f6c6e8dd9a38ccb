"""TD3 backbone and TD3+BC: golden values from an independent NumPy forward pass, and properties.

The NumPy reference re-implements the networks (ReLU MLPs, tanh actor), the smoothed critic
target, the summed twin-critic MSE and the actor loss ``-lambda mean Q1 + mean (pi - a)^2``. Gradient
directions are checked with central finite differences of those NumPy losses: Adam's first step
moves every parameter by ``-lr * g / (|g| + eps)``, i.e. ``-lr * sign(g)``.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offreg.agents.presets import matches, resolve_config, resolve_config_with_sources
from offreg.agents.regularizers import BC, Regularizer, RegularizerConfig, no_context
from offreg.agents.td3 import TD3Agent, TD3Config
from offreg.data import DatasetInfo, from_arrays, sample
from offreg.errors import ConfigError, UnknownNameError
from offreg.seeds import seed_axes
from offreg.types import Transitions

OBS, ACT, B = 3, 2, 5
TINY = TD3Config(actor_hidden_dims=(4,), critic_hidden_dims=(4,), normalize_observations=False, batch_size=B)
UPDATE = jax.jit(lambda agent, batch, key: agent.update(batch, key))  # shared: one compile per config
K = 4  # updates per scan in the scan/vmap/compile tests


def _dataset(n=200, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS)) * 2 + 1
    info = DatasetInfo("toy", "file", None, OBS, ACT, n)
    return from_arrays(obs, rng.uniform(-0.9, 0.9, (n, ACT)), rng.normal(size=n), obs + rng.normal(size=(n, OBS)),
                       (rng.uniform(size=n) < 0.2).astype(np.float32), info)


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    return Transitions(
        observations=jnp.asarray(rng.normal(size=(B, OBS)), jnp.float32),
        actions=jnp.asarray(rng.uniform(-0.9, 0.9, (B, ACT)), jnp.float32),
        rewards=jnp.asarray(rng.normal(size=B), jnp.float32),
        next_observations=jnp.asarray(rng.normal(size=(B, OBS)), jnp.float32),
        terminals=jnp.asarray([0.0, 1.0, 0.0, 0.0, 1.0], jnp.float32),
    )


# --- an independent NumPy implementation -------------------------------------------------------
def _layers(tree, member=None):
    """[(W, b), ...] in layer order from a flax MLP param tree (optionally one ensemble member)."""
    (inner,) = tree["params"].values() if member is not None else (tree["params"],)
    mlp = inner["MLP_0"]
    out = []
    for i in range(len(mlp)):
        d = mlp[f"Linear_{i}"]["Dense_0"]
        w, b = np.asarray(d["kernel"], np.float64), np.asarray(d["bias"], np.float64)
        out.append((w[member], b[member]) if member is not None else (w, b))
    return out


def np_mlp(layers, x):
    for w, b in layers[:-1]:
        x = np.maximum(x @ w + b, 0.0)
    w, b = layers[-1]
    return x @ w + b


def np_actor(layers, s, m=1.0):
    return m * np.tanh(np_mlp(layers, s))


def np_q(layers, s, a):
    return np_mlp(layers, np.concatenate([s, a], -1))[:, 0]


def np_target(agent, batch, noise_key, cfg):
    b = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), batch)
    eps = np.asarray(jax.random.normal(noise_key, b.actions.shape, jnp.float32), np.float64)
    noise = np.clip(cfg.policy_noise * eps, -cfg.noise_clip, cfg.noise_clip)
    na = np.clip(np_actor(_layers(agent.actor.target_params), b.next_observations) + noise, -1, 1)
    tq = np.minimum(*(np_q(_layers(agent.critic.target_params, i), b.next_observations, na) for i in range(2)))
    return b.rewards + cfg.discount * (1 - b.terminals) * tq


def np_critic_loss(critic_layers, batch, y):
    s, a = np.asarray(batch.observations, np.float64), np.asarray(batch.actions, np.float64)
    return sum(np.mean((np_q(critic_layers[i], s, a) - y) ** 2) for i in range(2))


def np_actor_loss(actor_layers, q1_layers, batch, alpha, lam=None):
    s, a = np.asarray(batch.observations, np.float64), np.asarray(batch.actions, np.float64)
    pi = np_actor(actor_layers, s)
    q = np_q(q1_layers, s, pi)
    lam = alpha / np.mean(np.abs(q)) if lam is None else lam
    return -lam * np.mean(q) + np.mean((pi - a) ** 2), lam


def _fd_grad(f, layers, h=1e-6):
    """Central finite differences of f(layers) w.r.t. every weight and bias."""
    grads = []
    for w, b in layers:
        gw, gb = np.zeros_like(w), np.zeros_like(b)
        for arr, g in ((w, gw), (b, gb)):
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + h
                up = f(layers)
                arr[idx] = old - h
                down = f(layers)
                arr[idx] = old
                g[idx] = (up - down) / (2 * h)
        grads.append((gw, gb))
    return grads


def _assert_adam_first_step(before, after, grads, lr):
    """Adam's first step is -lr * g / (|g| + 1e-8): check where |g| is clearly non-zero."""
    for (w0, b0), (w1, b1), (gw, gb) in zip(before, after, grads, strict=True):
        for p0, p1, g in ((w0, w1, gw), (b0, b1, gb)):
            big = np.abs(g) > 1e-4
            np.testing.assert_allclose((p1 - p0)[big], -lr * np.sign(g[big]), rtol=2e-3, atol=2e-8)
            np.testing.assert_allclose((p1 - p0)[~big], 0.0, atol=lr * 1.01)


# --- golden tests --------------------------------------------------------------------------------
def test_critic_target_and_critic_loss_match_numpy():
    agent = TD3Agent.create(TINY, _dataset(), jax.random.PRNGKey(0))
    batch, key = _batch(), jax.random.PRNGKey(7)
    noise_key = jax.random.split(key, 3)[0]  # the split the update documents: (noise, reg update, reg loss)
    y_np = np_target(agent, batch, noise_key, TINY)
    y, _ = agent.critic_target(batch, noise_key)
    np.testing.assert_allclose(np.asarray(y), y_np, rtol=1e-5, atol=1e-5)

    new, metrics = UPDATE(agent, batch, key)
    critic0 = [_layers(agent.critic.params, i) for i in range(2)]
    np.testing.assert_allclose(float(metrics["critic_loss"]), np_critic_loss(critic0, batch, y_np), rtol=1e-5)
    # the critic's Adam step follows the sign of the NumPy gradient of the summed MSE
    for i in range(2):
        def loss_i(layers, i=i):
            ls = [layers if j == i else critic0[j] for j in range(2)]
            return np_critic_loss(ls, batch, y_np)

        grads = _fd_grad(loss_i, [(w.copy(), b.copy()) for w, b in critic0[i]])
        _assert_adam_first_step(critic0[i], _layers(new.critic.params, i), grads, TINY.critic_lr)
    # step 1 is not an actor step
    assert float(metrics["actor_updated"]) == 0.0 and int(new.step) == 1


def test_actor_loss_and_lambda_match_numpy_with_updated_critic():
    agent = TD3Agent.create(TINY, _dataset(), jax.random.PRNGKey(1))
    upd = UPDATE
    batch = _batch()
    agent1, _ = upd(agent, batch, jax.random.PRNGKey(2))
    agent2, m = upd(agent1, batch, jax.random.PRNGKey(3))
    assert float(m["actor_updated"]) == 1.0
    actor1 = _layers(agent1.actor.params)
    q1_updated = _layers(agent2.critic.params, 0)  # the critic after step 2's critic update
    loss, lam = np_actor_loss(actor1, q1_updated, batch, TINY.alpha)
    np.testing.assert_allclose(float(m["lambda"]), lam, rtol=1e-5)
    np.testing.assert_allclose(float(m["actor_loss"]), loss, rtol=1e-5, atol=1e-6)
    pi = np_actor(actor1, np.asarray(batch.observations, np.float64))
    np.testing.assert_allclose(float(m["bc_loss"]), np.mean((pi - np.asarray(batch.actions)) ** 2), rtol=1e-5)
    # with the critic *before* the update lambda would differ: the test can tell them apart
    _, stale_lam = np_actor_loss(actor1, _layers(agent1.critic.params, 0), batch, TINY.alpha)
    assert abs(stale_lam - lam) > 1e-4 * lam
    # the actor's Adam step follows the NumPy gradient with lambda held constant (stop-gradient)
    grads = _fd_grad(lambda ls: np_actor_loss(ls, q1_updated, batch, TINY.alpha, lam)[0],
                     [(w.copy(), b.copy()) for w, b in actor1])
    _assert_adam_first_step(actor1, _layers(agent2.actor.params), grads, TINY.actor_lr)


def test_torch_init_bounds_and_spread():
    cfg = TD3Config()
    agent = TD3Agent.create(cfg, _dataset(), jax.random.PRNGKey(0))
    layers = _layers(agent.actor.params) + [lw for i in range(2) for lw in _layers(agent.critic.params, i)]
    for w, b in layers:
        bound = 1.0 / np.sqrt(w.shape[0])
        assert np.abs(w).max() <= bound + 1e-7 and np.abs(b).max() <= bound + 1e-7
        if w.size >= 2000:  # U(-c, c) has std c / sqrt(3)
            assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
            assert abs(w.mean()) < 0.05 * bound
    # the twin critics are independent, and targets start as exact copies
    assert not np.allclose(_layers(agent.critic.params, 0)[0][0], _layers(agent.critic.params, 1)[0][0])
    chex.assert_trees_all_equal(agent.critic.target_params, agent.critic.params)
    chex.assert_trees_all_equal(agent.actor.target_params, agent.actor.params)


# --- properties ----------------------------------------------------------------------------------
def test_policy_delay_and_polyak_targets():
    agent0 = TD3Agent.create(TINY, _dataset(), jax.random.PRNGKey(0))
    upd = UPDATE
    agent1, _ = upd(agent0, _batch(), jax.random.PRNGKey(1))
    chex.assert_trees_all_equal(agent1.actor.params, agent0.actor.params)
    chex.assert_trees_all_equal(agent1.actor.target_params, agent0.actor.target_params)
    chex.assert_trees_all_equal(agent1.critic.target_params, agent0.critic.target_params)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(agent1.critic.params, agent0.critic.params)
    agent2, _ = upd(agent1, _batch(), jax.random.PRNGKey(2))
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(agent2.actor.params, agent1.actor.params)
    tau = TINY.tau
    expect = jax.tree_util.tree_map(lambda t, o: (1 - tau) * t + tau * o, agent0.critic.params, agent2.critic.params)
    chex.assert_trees_all_close(agent2.critic.target_params, expect, rtol=1e-6, atol=1e-7)
    expect = jax.tree_util.tree_map(lambda t, o: (1 - tau) * t + tau * o, agent0.actor.params, agent2.actor.params)
    chex.assert_trees_all_close(agent2.actor.target_params, expect, rtol=1e-6, atol=1e-7)
    agent3, m3 = upd(agent2, _batch(), jax.random.PRNGKey(3))
    chex.assert_trees_all_equal(agent3.actor.params, agent2.actor.params)
    assert float(m3["actor_updated"]) == 0.0


def _scan_updates(agent, data, key, k):
    def body(a, kk):
        bkey, ukey = jax.random.split(kk)
        return a.update(sample(data, bkey, TINY.batch_size), ukey)

    return jax.lax.scan(body, agent, jax.random.split(key, k))


SCAN = jax.jit(_scan_updates, static_argnums=3)


def test_scan_equals_python_loop():
    ds = TINY.prepare(_dataset())
    agent = TD3Agent.create(TINY, ds, jax.random.PRNGKey(0))
    scanned, metrics = SCAN(agent, ds.transitions, jax.random.PRNGKey(5), K)
    loop = agent
    for i, kk in enumerate(jax.random.split(jax.random.PRNGKey(5), K)):
        bkey, ukey = jax.random.split(kk)
        loop, m = UPDATE(loop, sample(ds.transitions, bkey, TINY.batch_size), ukey)
        np.testing.assert_allclose(float(metrics["critic_loss"][i]), float(m["critic_loss"]), rtol=1e-5)
    chex.assert_trees_all_close(scanned, loop, rtol=1e-5, atol=1e-6)
    assert int(scanned.step) == K


@pytest.mark.slow  # ~14 s; tests/test_engine.py and the golden test cover the seed vmap
def test_vmapped_seeds_equal_single_runs():
    ds = TINY.prepare(_dataset())
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    create = lambda k: TD3Agent.create(TINY, ds, k)
    singles = [SCAN(create(k), ds.transitions, k, K) for k in keys]
    # every leaf batched over seeds, and the same with the step counter shared (seed_axes)
    for axes in (0, seed_axes(create(keys[0]))):
        agents = jax.vmap(create, out_axes=axes)(keys)
        run = jax.vmap(lambda a, d, k: _scan_updates(a, d, k, K), in_axes=(axes, None, 0), out_axes=(axes, 0))
        trained, metrics = jax.jit(run)(agents, ds.transitions, keys)
        per_seed = trained.replace(step=jnp.broadcast_to(trained.step, (2,)))  # a shared step has no seed axis
        for i, (single, m) in enumerate(singles):
            chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x, i=i: x[i], per_seed), single,
                                        rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(np.asarray(metrics["actor_loss"][i]), np.asarray(m["actor_loss"]), rtol=1e-5)


def test_update_compiles_once():
    ds = TINY.prepare(_dataset())
    agent = TD3Agent.create(TINY, ds, jax.random.PRNGKey(0))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(a, data, key):
        return _scan_updates(a, data, key, K)

    for i in range(4):
        agent, _ = step(agent, ds.transitions, jax.random.PRNGKey(i))
    # a swept coefficient is an array: a new alpha reuses the compiled update
    agent, _ = step(agent.replace(coefs={**agent.coefs, "alpha": jnp.float32(10.0)}), ds.transitions,
                    jax.random.PRNGKey(9))
    assert int(agent.step) == 5 * K


def test_regularizer_with_state_sees_updated_critic_and_next_actions():
    """A regularizer that learns: update() runs after the critic step and before the actor loss."""

    def init(key, dataset):
        return {"q_seen": jnp.zeros((2, B)), "calls": jnp.zeros((), jnp.int32)}

    def update(state, batch, critic, coefs, context, key):
        q = critic.q(batch.observations, batch.actions) + 0.0 * critic.next_actions.sum()
        return {"q_seen": q, "calls": state["calls"] + 1}, {"reg_calls": state["calls"] + 1}

    def loss(state, observations, policy_actions, batch, critic, coefs, context, key):
        return jnp.mean(policy_actions**2) * 0.0 + state["calls"].astype(jnp.float32), {}

    @dataclasses.dataclass(frozen=True)
    class Counting(RegularizerConfig):
        kind = "test-counting"

        def build(self, backbone):
            return Regularizer(init, no_context, update, loss)

    cfg = TD3Config(regularizer=Counting(), actor_hidden_dims=(4,), critic_hidden_dims=(4, 4),
                    normalize_observations=False)
    assert cfg.regularizer.functions(cfg) is TD3Config.from_dict(cfg.to_dict()).regularizer.functions(cfg)
    agent = TD3Agent.create(cfg, _dataset(), jax.random.PRNGKey(0))
    batch = _batch()
    new, m = UPDATE(agent, batch, jax.random.PRNGKey(1))
    assert int(new.reg_state["calls"]) == 1 and float(m["reg_calls"]) == 1.0
    from offreg.agents.td3 import networks

    _, critic, _ = networks(cfg, ACT)
    np.testing.assert_allclose(np.asarray(new.reg_state["q_seen"]),
                               np.asarray(critic.apply(new.critic.params, batch.observations, batch.actions)),
                               rtol=1e-6)
    new2, m2 = UPDATE(new, batch, jax.random.PRNGKey(2))
    assert float(m2["reg_loss"]) == 2.0  # the loss saw the state updated in the same step


def test_act_normalizes_raw_observations_and_is_bounded():
    cfg = dataclasses.replace(TINY, normalize_observations=True)
    raw = _dataset()
    agent = TD3Agent.create(cfg, raw, jax.random.PRNGKey(0))
    obs = np.asarray(raw.transitions.observations, np.float64)
    mu, sd = obs.mean(0), obs.std(0) + 1e-3
    np.testing.assert_allclose(np.asarray(agent.obs_mean), mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(agent.obs_std), sd, rtol=1e-5)
    expected = np_actor(_layers(agent.actor.params), (obs[:7] - mu) / sd)
    np.testing.assert_allclose(np.asarray(agent.act(jnp.asarray(obs[:7], jnp.float32))), expected, atol=1e-5)


def test_config_validation_and_presets():
    with pytest.raises(ConfigError, match="policy_freq"):
        TD3Config(policy_freq=0)
    with pytest.raises(ConfigError, match="activation"):
        TD3Config(activation="sigmoidish")
    cfg = resolve_config("td3bc", "d4rl/hopper-medium-v2", {"alpha": "4"})
    assert isinstance(cfg, TD3Config) and cfg.alpha == 4.0 and cfg.critic_hidden_dims == (256, 256)
    assert cfg.regularizer == BC()
    _, sources = resolve_config_with_sources("td3bc", "hopper-medium-v2", {})
    assert "sfujim/TD3_BC" in sources["alpha"]
    with pytest.raises(UnknownNameError, match="alhpa"):
        resolve_config("td3bc", None, {"alhpa": 1.0})
    assert matches("halfcheetah-*", "d4rl/halfcheetah-medium-v2")
    assert matches("halfcheetah-*", "mujoco/halfcheetah/medium-v0")
    assert matches(["x-*", "antmaze-*"], "D4RL/antmaze/umaze-v1")
    assert matches("hopper-*", "/data/hopper-medium-v2.hdf5")
    assert not matches("hopper-*", "walker2d-medium-v2")
    assert matches("offreg/*", "offreg/hopper-medium-v0") and not matches("offreg/*", "hopper-medium-v2")


def test_td3bc_regularizer_is_behaviour_cloning():
    cfg = TD3Config()
    assert cfg.regularizer == BC()
    reg = cfg.regularizer.functions(cfg)
    assert reg is TD3Config().regularizer.functions(TD3Config())
    pi, a = jnp.array([[0.5, -0.5]]), jnp.array([[0.0, 0.5]])
    batch = Transitions(jnp.zeros((1, 3)), a, jnp.zeros(1), jnp.zeros((1, 3)), jnp.zeros(1))
    loss, _ = reg.loss((), batch.observations, pi, batch, None, {}, (), None)
    assert float(loss) == pytest.approx((0.25 + 1.0) / 2)
    assert reg.loss((), None, a, batch, None, {}, (), None)[0] == 0.0
