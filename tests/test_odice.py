"""O-DICE: golden losses against NumPy, gradient properties of the three update rules, imitation
mode, the IQL reward scaling and the toy example's state-level constraint."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import offreg
from offreg.agents import get_spec
from offreg.agents.odice import ODICE, ODICEConfig, _value_net, imitation_dataset
from offreg.agents.odice_losses import bc_weight, f_star, value_gradient
from offreg.data import DatasetInfo, from_arrays
from offreg.data.core import iql_return_range
from offreg.errors import ConfigError, DatasetError
from offreg.types import Transitions

OBS, ACT, B = 4, 2, 32
SMALL = dict(value_hidden_dims=(16, 16), policy_hidden_dims=(24, 24))


# --- independent NumPy reference -----------------------------------------------------------------
def np_f_star(y):
    """Pearson chi-square conjugate written piecewise (not as the code's w-form)."""
    y = np.asarray(y, np.float64)
    return np.where(y >= -2.0, y + y**2 / 4.0, -1.0)


def np_mlp(layers, x, layer_norm):
    """``layers``: list of (kernel, bias, ln_scale, ln_bias) per hidden layer, then (kernel, bias)."""
    x = np.asarray(x, np.float64)
    for kernel, bias, scale, shift in layers[:-1]:
        x = x @ kernel + bias
        if layer_norm:
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            x = (x - mu) / np.sqrt(var + 1e-5) * scale + shift
        x = np.maximum(x, 0.0)
    kernel, bias = layers[-1]
    return x @ kernel + bias


def np_value_heads(params, x, layer_norm, n_hidden=2):
    """``[n_heads, B]`` from the flax twin-V parameters, read leaf by leaf."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)["params"]["VmapValueNet_0"]["MLP_0"]
    heads = p["Linear_0"]["Dense_0"]["kernel"].shape[0]
    out = []
    for h in range(heads):
        layers = []
        for i in range(n_hidden):
            d = p[f"Linear_{i}"]["Dense_0"]
            ln = p.get(f"LayerNorm_{i}", {"scale": np.ones((heads, 1)), "bias": np.zeros((heads, 1))})
            layers.append((d["kernel"][h], d["bias"][h], ln["scale"][h], ln["bias"][h]))
        d = p[f"Linear_{n_hidden}"]["Dense_0"]
        layers.append((d["kernel"][h], d["bias"][h]))
        out.append(np_mlp(layers, x, layer_norm)[:, 0])
    return np.stack(out)


def np_policy(params, x, tanh_mean=False, n_hidden=2):
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)["params"]
    layers = [(p["MLP_0"][f"Linear_{i}"]["Dense_0"]["kernel"], p["MLP_0"][f"Linear_{i}"]["Dense_0"]["bias"], 1.0, 0.0)
              for i in range(n_hidden)]
    last = p["MLP_0"][f"Linear_{n_hidden}"]["Dense_0"]
    layers.append((last["kernel"], last["bias"]))
    mean = np_mlp(layers, x, False)
    if tanh_mean:
        mean = np.tanh(mean)
    return mean, np.clip(p["log_std"], -5.0, 2.0)


def np_log_prob(mean, log_std, a):
    std = np.exp(log_std)
    return (-0.5 * (((a - mean) / std) ** 2) - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)


# --- fixtures ------------------------------------------------------------------------------------
def _batch(seed=0, n=B, terminal_frac=0.2):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS))
    return Transitions(
        observations=jnp.asarray(obs, jnp.float32),
        actions=jnp.asarray(rng.uniform(-1, 1, (n, ACT)), jnp.float32),
        rewards=jnp.asarray(rng.normal(size=n), jnp.float32),
        next_observations=jnp.asarray(obs + 0.3 * rng.normal(size=(n, OBS)), jnp.float32),
        terminals=jnp.asarray(rng.uniform(size=n) < terminal_frac, jnp.float32),
    )


def _dataset(n=200, episode_len=50, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS))
    info = DatasetInfo("odice-test", "file", None, OBS, ACT, n, max_episode_steps=episode_len)
    starts = np.arange(0, n, episode_len)
    return from_arrays(
        obs, rng.uniform(-1, 1, (n, ACT)), rng.normal(size=n), obs + 0.1, np.zeros(n), info,
        episode_starts=starts, episode_returns=rng.normal(size=len(starts)),
        episode_lengths=np.full(len(starts), episode_len),
    )


def _perturbed(tree, seed, scale=0.3):
    """Random parameters: every leaf (LayerNorm scale/bias included) moved off its init."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    leaves = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _value_setup(twin=True, layer_norm=True, seed=0):
    cfg = ODICEConfig(**SMALL, twin_v=twin, layer_norm=layer_norm)
    net = _value_net(cfg)
    params = _perturbed(nn.Module.init(net, jax.random.PRNGKey(seed), jnp.zeros((1, OBS))), seed + 1)
    target = _perturbed(params, seed + 2, 0.1)
    return net, params, target


def _grad(rule, params, target, batch, lam=0.6, eta=1.0, net=None):
    return value_gradient(net.apply, params, target, batch, jnp.float32(lam), jnp.float32(eta), 0.99, rule)


# --- golden values -------------------------------------------------------------------------------
def test_f_star_matches_piecewise_numpy():
    y = np.linspace(-6, 6, 241).astype(np.float32)
    np.testing.assert_allclose(np.asarray(f_star(jnp.asarray(y))), np_f_star(y), rtol=1e-6, atol=1e-6)
    # derivative max(0, 1 + y/2), zero below -2
    g = np.asarray(jax.vmap(jax.grad(f_star))(jnp.asarray(y)))
    np.testing.assert_allclose(g, np.maximum(0.0, 1.0 + y / 2.0), atol=1e-6)


@pytest.mark.parametrize("twin,layer_norm", [(True, True), (False, False)])
def test_residuals_and_losses_match_numpy(twin, layer_norm):
    net, params, target = _value_setup(twin, layer_norm)
    batch = _batch()
    lam, eta, gamma = 0.7, 0.5, 0.99
    _, delta_f, m = value_gradient(net.apply, params, target, batch, jnp.float32(lam), jnp.float32(eta), gamma,
                                   "orthogonal")
    s, sp = np.asarray(batch.observations), np.asarray(batch.next_observations)
    r, mask = np.asarray(batch.rewards, np.float64), 1.0 - np.asarray(batch.terminals, np.float64)
    v_s, v_sp = np_value_heads(params, s, layer_norm), np_value_heads(params, sp, layer_norm)
    tv_s, tv_sp = np_value_heads(target, s, layer_norm).min(0), np_value_heads(target, sp, layer_norm).min(0)
    assert v_s.shape == (2 if twin else 1, B)
    d_f = r + gamma * mask * tv_sp - v_s  # [heads, B]: each head against the shared min target
    d_b = r + gamma * mask * v_sp - tv_s
    np.testing.assert_allclose(np.asarray(delta_f), d_f, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(m["forward_loss"]), lam * np_f_star(d_f).mean(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(m["backward_loss"]), lam * eta * np_f_star(d_b).mean(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(m["v_loss"]), (1 - lam) * v_s.mean(), rtol=1e-4, atol=1e-5)
    # the weight: per-head clip(delta_f, 0, 100), averaged over heads
    w_heads = np.minimum(np.maximum(d_f, 0.0), 100.0)
    np.testing.assert_allclose(np.asarray(bc_weight(delta_f, 100.0)), w_heads.mean(0), rtol=1e-4, atol=1e-5)


def test_weight_cap_and_twin_head_weight_is_mean_of_head_weights():
    delta = jnp.asarray([[-1.0, 0.5, 150.0, 3.0], [2.0, -0.5, 50.0, 200.0]])
    np.testing.assert_allclose(np.asarray(bc_weight(delta, 100.0)), [1.0, 0.25, 75.0, 51.5])
    # the code's per-head form: mean over [2, B] of w_head * nll equals mean_B(mean_head(w) * nll)
    nll = np.array([0.3, 1.2, -0.7, 2.0])
    w_heads = np.clip(np.asarray(delta), 0, 100)
    np.testing.assert_allclose(float(jnp.mean(bc_weight(delta, 100.0) * nll)), (w_heads * nll).mean(), rtol=1e-6)


def test_update_matches_numpy_policy_loss_target_ema_and_order():
    cfg = ODICEConfig(**SMALL, lambda_=0.7, eta=0.5)
    ds = _dataset()
    agent = ODICE.create(cfg, ds, jax.random.PRNGKey(3))
    agent = agent.replace(
        value=agent.value.replace(params=_perturbed(agent.value.params, 4),
                                  target_params=_perturbed(agent.value.params, 5, 0.1)),
        policy=agent.policy.replace(params=_perturbed(agent.policy.params, 6, 0.1)),
    )
    batch = _batch(1)
    new, m = jax.jit(ODICE.update)(agent, batch, jax.random.PRNGKey(0))
    s, sp, a = (np.asarray(x, np.float64) for x in (batch.observations, batch.next_observations, batch.actions))
    r, mask = np.asarray(batch.rewards, np.float64), 1.0 - np.asarray(batch.terminals, np.float64)
    # policy weight from the values *before* the value step
    d_f = r + 0.99 * mask * np_value_heads(agent.value.target_params, sp, True).min(0) - np_value_heads(
        agent.value.params, s, True)
    w = np.clip(d_f, 0, 100)  # [2, B]
    mean, log_std = np_policy(agent.policy.params, s)
    nll = -np_log_prob(mean, log_std, a)
    np.testing.assert_allclose(float(m["policy_loss"]), (w * nll[None]).mean(), rtol=1e-4)
    np.testing.assert_allclose(float(m["bc_weight_mean"]), w.mean(), rtol=1e-4)
    # EMA target with beta = 0.005, after the value step
    expected = jax.tree_util.tree_map(lambda t, o: 0.995 * np.asarray(t) + 0.005 * np.asarray(o),
                                      agent.value.target_params, new.value.params)
    for x, y in zip(jax.tree_util.tree_leaves(new.value.target_params), jax.tree_util.tree_leaves(expected),
                    strict=True):
        np.testing.assert_allclose(np.asarray(x), y, rtol=1e-5, atol=1e-7)
    assert int(new.step) == 1
    # act is the clipped policy mean
    obs = np.random.default_rng(0).normal(size=(5, OBS)) * 3
    np.testing.assert_allclose(np.asarray(new.act(jnp.asarray(obs, jnp.float32))),
                               np.clip(np_policy(new.policy.params, obs)[0], -1, 1), rtol=1e-4, atol=1e-5)


# --- gradient properties -------------------------------------------------------------------------
def _pieces(net, params, target, batch, lam, eta, gamma=0.99):
    """Independent jax.grad of each unprojected piece, with targets held fixed by closure."""
    s, sp, r, mask = batch.observations, batch.next_observations, batch.rewards, 1.0 - batch.terminals
    tv_s = net.apply(target, s).min(0)
    tv_sp = net.apply(target, sp).min(0)
    fs = lambda y: jnp.where(y >= -2, y + y**2 / 4, -1.0)
    g_f = jax.grad(lambda p: lam * jnp.mean(fs(r + gamma * mask * tv_sp - net.apply(p, s))))(params)
    g_b = jax.grad(lambda p: lam * eta * jnp.mean(fs(r + gamma * mask * net.apply(p, sp) - tv_s)))(params)
    g_v = jax.grad(lambda p: (1 - lam) * jnp.mean(net.apply(p, s)))(params)
    return g_f, g_b, g_v


def _sub(a, b):
    return jax.tree_util.tree_map(jnp.subtract, a, b)


def _flat(t):
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree_util.tree_leaves(t)]).astype(np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eta_zero_orthogonal_equals_semi(seed):
    net, params, target = _value_setup(seed=seed)
    batch = _batch(seed)
    g_o, _, _ = _grad("orthogonal", params, target, batch, eta=0.0, net=net)
    g_s, _, _ = _grad("semi", params, target, batch, net=net)
    # same maths; the two differ only in float32 summation order (one VJP vs two)
    np.testing.assert_allclose(_flat(g_o), _flat(g_s), rtol=1e-5, atol=1e-7)
    g_o1, _, _ = _grad("orthogonal", params, target, batch, eta=1.0, net=net)
    assert np.abs(_flat(g_o1) - _flat(g_s)).max() > 1e-3  # eta > 0 does change it


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_projected_backward_part_is_orthogonal_to_forward_gradient(seed):
    net, params, target = _value_setup(seed=seed)
    batch = _batch(seed, terminal_frac=0.1)
    lam, eta = 0.6, 0.8
    g, _, m = _grad("orthogonal", params, target, batch, lam, eta, net=net)
    g_f, g_b, g_v = (_flat(x) for x in _pieces(net, params, target, batch, lam, eta))
    proj = _flat(g) - g_v - g_f
    # the projection of the (eta-scaled) backward gradient, computed here in float64
    expected = g_b - (g_f @ g_b) / (g_f @ g_f) * g_f
    np.testing.assert_allclose(proj, expected, rtol=1e-3, atol=1e-6 * np.abs(g_b).max())
    assert abs(proj @ g_f) <= 1e-4 * np.linalg.norm(proj) * np.linalg.norm(g_f)
    # the code's own coefficient agrees, whatever its sign
    np.testing.assert_allclose(float(m["parallel_coef"]), (g_f @ g_b) / (g_f @ g_f), rtol=1e-4)


@pytest.mark.parametrize("flip", [1.0, -1.0])
def test_projection_is_applied_whatever_the_sign(flip):
    """A linear V(s) = s.w: with s' = -s the dot product <g_f, g_b> is positive, with s' = s negative.

    PCGrad would leave the positive case alone; O-DICE projects in both.
    """
    rng = np.random.default_rng(0)
    w = {"w": jnp.asarray(rng.normal(size=OBS), jnp.float32)}
    apply = lambda p, x: (x @ p["w"])[None]
    batch = _batch(3, terminal_frac=0.0)
    batch = batch.replace(next_observations=flip * batch.observations)
    g, _, m = value_gradient(apply, w, w, batch, jnp.float32(0.6), jnp.float32(1.0), 0.99, "orthogonal")
    s, r = np.asarray(batch.observations, np.float64), np.asarray(batch.rewards, np.float64)
    v = s @ np.asarray(w["w"], np.float64)
    fp = lambda y: np.maximum(0.0, 1.0 + y / 2.0)
    g_f = -0.6 * (fp(r + 0.99 * flip * v - v)[:, None] * s).mean(0)
    g_b = 0.6 * 0.99 * flip * (fp(r + 0.99 * flip * v - v)[:, None] * s).mean(0)
    g_v = 0.4 * s.mean(0)
    c = (g_f @ g_b) / (g_f @ g_f)
    assert np.sign(c) == -flip
    np.testing.assert_allclose(float(m["parallel_coef"]), c, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(g["w"]), g_v + (1 - c) * g_f + g_b, rtol=1e-4, atol=1e-6)


def test_semi_gradient_matches_numpy_finite_differences():
    net, params, target = _value_setup(seed=11)
    batch = _batch(11)
    lam = 0.6
    g, _, _ = _grad("semi", params, target, batch, lam, net=net)
    s, sp = np.asarray(batch.observations), np.asarray(batch.next_observations)
    r, mask = np.asarray(batch.rewards, np.float64), 1 - np.asarray(batch.terminals, np.float64)
    tv_sp = np_value_heads(target, sp, True).min(0)

    def loss(p):
        v = np_value_heads(p, s, True)
        return ((1 - lam) * v + lam * np_f_star(r + 0.99 * mask * tv_sp - v)).mean()

    p64 = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), params)
    leaves, treedef = jax.tree_util.tree_flatten(p64)
    g_leaves = jax.tree_util.tree_leaves(g)
    rng = np.random.default_rng(0)
    for li in range(len(leaves)):
        for _ in range(2):
            idx = tuple(rng.integers(0, d) for d in leaves[li].shape)
            eps = 1e-5
            plus = [x.copy() for x in leaves]
            minus = [x.copy() for x in leaves]
            plus[li][idx] += eps
            minus[li][idx] -= eps
            unflat = jax.tree_util.tree_unflatten
            fd = (loss(unflat(treedef, plus)) - loss(unflat(treedef, minus))) / (2 * eps)
            np.testing.assert_allclose(float(np.asarray(g_leaves[li])[idx]), fd, rtol=2e-3, atol=2e-5)


def test_true_gradient_flows_through_both_values():
    net, params, target = _value_setup(seed=5)
    batch = _batch(5)
    g, _, _ = _grad("true", params, target, batch, net=net)
    s, sp, r, mask = batch.observations, batch.next_observations, batch.rewards, 1.0 - batch.terminals
    fs = lambda y: jnp.where(y >= -2, y + y**2 / 4, -1.0)

    def loss(p):
        v = net.apply(p, s)
        return jnp.mean(0.4 * v + 0.6 * fs(r + 0.99 * mask * net.apply(p, sp) - v))

    np.testing.assert_allclose(_flat(g), _flat(jax.grad(loss)(params)), rtol=1e-4, atol=1e-6)


def test_terminal_transitions_give_no_backward_gradient():
    net, params, target = _value_setup(seed=9)
    batch = _batch(9, terminal_frac=1.1)  # all terminal
    _, g_b, _ = _pieces(net, params, target, batch, 0.6, 1.0)
    assert np.abs(_flat(g_b)).max() == 0.0
    g_o, _, _ = _grad("orthogonal", params, target, batch, net=net)
    g_s, _, _ = _grad("semi", params, target, batch, net=net)
    np.testing.assert_allclose(_flat(g_o), _flat(g_s), rtol=1e-5, atol=1e-7)


# --- agent contract, imitation, config -----------------------------------------------------------
@pytest.mark.slow  # O-DICE at its full network size (~24 s); tests/test_sweep.py checks one trace for a vmapped grid
def test_update_compiles_once_and_vmaps_over_seeds_and_coefficients():
    cfg = ODICEConfig(**SMALL)
    ds = _dataset()
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    agents = jax.vmap(lambda k: ODICE.create(cfg, ds, k))(keys)
    agents = agents.replace(coefs={"lambda_": jnp.asarray([0.5, 0.6, 0.7]), "eta": jnp.asarray([0.0, 1.0, 2.0])})
    batch = _batch(2)
    step = jax.jit(jax.vmap(ODICE.update, in_axes=(0, None, 0)))
    out, m = step(agents, batch, keys)
    out, m = step(out, batch, keys)
    assert step._cache_size() == 1
    assert m["value_loss"].shape == (3,) and np.all(np.isfinite(np.asarray(m["value_loss"])))
    # seed 1 of the vmapped run equals a single run with key 1 and the same coefficients
    single = ODICE.create(cfg.replace(lambda_=0.6, eta=1.0), ds, keys[1])
    single, _ = ODICE.update(single, batch, keys[1])
    single, m1 = ODICE.update(single, batch, keys[1])
    np.testing.assert_allclose(float(m["value_loss"][1]), float(m1["value_loss"]), rtol=1e-4)


def test_registered_and_config_round_trip():
    spec = get_spec("odice")
    assert spec.agent_cls is ODICE and spec.config_cls is ODICEConfig
    cfg = ODICEConfig(update_rule="semi", lambda_=0.5)
    assert ODICEConfig.from_dict(cfg.to_dict()) == cfg
    assert ODICEConfig.from_dict({"update_rule": "true", "value_hidden_dims": [8, 8]}).value_hidden_dims == (8, 8)
    with pytest.raises(ConfigError, match="update_rule"):
        ODICEConfig(update_rule="orthogonl")
    with pytest.raises(ConfigError, match="lambda_"):
        ODICEConfig(lambda_=0.0)
    with pytest.raises(ConfigError, match="eta"):
        ODICEConfig(eta=-1.0)


def test_bundled_lambda_presets_are_the_committed_sweep_choices():
    import json
    from pathlib import Path

    from offreg.agents.presets import resolve_config_with_sources

    table = json.loads((Path(__file__).parents[1] / "experiments/odice/results/sweep/table.json").read_text())
    assert len(table["chosen"]) == 6
    for dataset, lam in table["chosen"].items():
        cfg, src = resolve_config_with_sources("odice", dataset)
        assert cfg.lambda_ == lam, dataset
        assert cfg.eta == 1.0
        if lam != 0.6:
            assert "sweep" in src["lambda_"]
    # D4RL names keep the official code's defaults
    assert resolve_config_with_sources("odice", "hopper-medium-v2")[0].lambda_ == 0.6


def test_imitation_mode_trains_on_one_zero_reward_trajectory():
    ds = _dataset()
    normed = ds.normalize_observations(1e-3)  # the engine may hand over a normalized dataset
    raw = np.asarray(ds.transitions.observations)[100:150]
    episode = imitation_dataset(normed, 2, normalize=False, eps=1e-3)
    np.testing.assert_allclose(np.asarray(episode.transitions.observations), raw, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(episode.transitions.rewards) == 0.0) and len(episode) == 50
    cfg = ODICEConfig.imitation(2, **SMALL)
    assert cfg.tanh_mean and not cfg.layer_norm and cfg.lambda_ == 0.4 and cfg.value_lr == 1e-4
    # imitation is a data transform: the engine samples every batch from the prepared episode
    prepared = cfg.prepare(normed)
    assert len(prepared) == 50 and cfg.prepare(prepared) is prepared  # idempotent
    mu, sd = raw.mean(0), raw.std(0) + 1e-3
    np.testing.assert_allclose(np.asarray(prepared.transitions.observations), (raw - mu) / sd, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(prepared.transitions.rewards) == 0.0)
    agent = ODICE.create(cfg, normed, jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(agent.obs_mean), mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(agent.obs_std), sd, rtol=1e-5)
    result = offreg.train("odice", ds, steps=2, eval_every=0, log_every=2, progress=False,
                          overrides={**cfg.to_dict(), "batch_size": 8})
    assert result.dataset_info.num_transitions == 50 and result.dataset_info.extra["imitation_episode"] == 2
    with pytest.raises(ConfigError, match="expert_trajectory"):
        ODICE.create(ODICEConfig.imitation(9, **SMALL), ds, jax.random.PRNGKey(0))
    empty = dataclasses.replace(ds, episode_starts=np.zeros(0, np.int64))
    with pytest.raises(DatasetError, match="no complete episodes"):
        ODICE.create(cfg, empty, jax.random.PRNGKey(0))


# --- reward scaling ------------------------------------------------------------------------------
def test_iql_return_range_cuts_every_max_steps_and_drops_the_tail():
    # episode cut at the terminal (index 2), then every 3 transitions; the tail [7] is dropped
    r = np.array([1.0, 2.0, 3.0, 10.0, 10.0, 10.0, -4.0, 100.0])
    d = np.array([0, 0, 1, 0, 0, 0, 0, 0])
    # closed episodes: [1,2,3]=6 (terminal), [10,10,10]=30 (3 steps), tail [-4, 100] excluded
    assert iql_return_range(r, d, 3) == (6.0, 30.0)
    info = DatasetInfo("t", "file", None, 1, 1, 8, max_episode_steps=3)
    ds = from_arrays(np.zeros((8, 1)), np.zeros((8, 1)), r, np.zeros((8, 1)), d, info)
    out = ds.transform_rewards("locomotion_iql")
    np.testing.assert_allclose(np.asarray(out.transitions.rewards), r * 1000.0 / 24.0, rtol=1e-6)
    assert out.info.reward_transform == "locomotion_iql"
    with pytest.raises(DatasetError):
        iql_return_range(np.ones(2), np.zeros(2), 5)


def test_antmaze_reward_constants_give_minus_three_and_zero():
    cfg = ODICEConfig()
    info = DatasetInfo("a", "file", None, 1, 1, 3)
    ds = from_arrays(np.zeros((3, 1)), np.zeros((3, 1)), [0.0, 1.0, 0.0], np.zeros((3, 1)), np.zeros(3), info)
    out = ds.transform_rewards("antmaze", cfg.reward_scale, cfg.reward_shift)
    np.testing.assert_allclose(np.asarray(out.transitions.rewards), [-3.0, 0.0, -3.0])


# --- toy example: the state-level constraint -----------------------------------------------------
def _toy_gap(rule, steps, seed):
    """Train on the toy corridor data with a jitted scan; return the support gap of the min-V.

    gap = (mean V inside the corridor - mean V outside) / std of V inside, over a 21 x 21 grid.
    """
    from offreg.data import sample
    from offreg.data.generate.toy_navigation import toy_dataset
    from offreg.envs.toy_navigation import in_support

    ds = toy_dataset(num_episodes=200, seed=0)
    cfg = ODICEConfig(value_hidden_dims=(64, 64), policy_hidden_dims=(32, 32), value_lr=1e-3, policy_lr=1e-3,
                      update_rule=rule, reward_transform="none")
    agent = ODICE.create(cfg, ds, jax.random.PRNGKey(seed))

    @jax.jit
    def run(agent, key):
        def body(agent, k):
            k1, k2 = jax.random.split(k)
            return agent.update(sample(ds.transitions, k1, 256), k2)

        return jax.lax.scan(body, agent, jax.random.split(key, steps))[0]

    agent = run(agent, jax.random.PRNGKey(100 + seed))
    g = np.linspace(0.0, 1.0, 21)
    pts = np.stack([a.ravel() for a in np.meshgrid(g, g)], -1).astype(np.float32)
    v = np.asarray(agent.state_value(jnp.asarray(pts)))
    inside = in_support(pts)
    return (v[inside].mean() - v[~inside].mean()) / v[inside].std()


@pytest.mark.slow  # a learning property on the toy MDP (~15 s)
def test_toy_orthogonal_values_lower_outside_support_than_semi():
    """O-DICE's backward gradient reaches next states just off the corridor; S-DICE's never does."""
    semi, orth = _toy_gap("semi", 1200, 0), _toy_gap("orthogonal", 1200, 0)
    assert orth > semi + 0.3, (semi, orth)


def test_imitation_config_file_matches_the_preset():
    import json
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "odice" / "imitation.json"
    assert ODICEConfig.from_dict(json.loads(path.read_text())) == ODICEConfig.imitation(1)
