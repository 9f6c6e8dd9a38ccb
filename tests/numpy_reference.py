"""An independent float64 NumPy reference of offreg's networks and optimizer, for golden tests.

Not a test module: import it from tests (``from numpy_reference import np_mlp``; pytest puts the
tests folder on ``sys.path``). Nothing here calls offreg's network or optimizer code.
"""

import jax
import numpy as np

from offreg.data import DatasetInfo, from_arrays


def np_mlp(params, x, member=None):
    """Forward of an offreg MLP (``Linear_i/Dense_0``) from its parameter dict; ReLU between layers."""
    layers = sorted(params, key=lambda k: int(k.split("_")[1]))
    for i, name in enumerate(layers):
        w, b = (np.asarray(params[name]["Dense_0"][k], np.float64) for k in ("kernel", "bias"))
        if member is not None:
            w, b = w[member], b[member]
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


def np_actor(p, s):
    return np.tanh(np_mlp(p["params"]["MLP_0"], s))


def np_critic(p, s, a):
    (members,) = p["params"].values()
    x = np.concatenate([s, a], axis=-1)
    return np.stack([np_mlp(members["MLP_0"], x, i)[..., 0] for i in range(2)])


def np_value(p, s):
    return np_mlp(p["params"]["MLP_0"], s)[..., 0]


def to_np(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def fd_grad(f, params, h=1e-6):
    """Central finite differences of a scalar NumPy function of a parameter pytree."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    grads = []
    for i, leaf in enumerate(leaves):
        g = np.zeros_like(leaf)
        for j in np.ndindex(leaf.shape):
            for sign in (1, -1):
                bumped = [x.copy() for x in leaves]
                bumped[i][j] += sign * h
                g[j] += sign * f(jax.tree_util.tree_unflatten(treedef, bumped)) / (2 * h)
        grads.append(g)
    return jax.tree_util.tree_unflatten(treedef, grads)


def adam_step(params, grads, opt_state, lr, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch/optax Adam from the given (count, mu, nu)."""
    adam = opt_state[0]
    t = int(adam.count) + 1
    mu = jax.tree_util.tree_map(lambda m, g: b1 * np.asarray(m, np.float64) + (1 - b1) * g, adam.mu, grads)
    nu = jax.tree_util.tree_map(lambda v, g: b2 * np.asarray(v, np.float64) + (1 - b2) * g * g, adam.nu, grads)
    return jax.tree_util.tree_map(
        lambda p, m, v: p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps), params, mu, nu
    )


def close(got, want, atol):
    jax.tree_util.tree_map(lambda g, w: np.testing.assert_allclose(np.asarray(g, np.float64), w, atol=atol), got, want)


def toy_dataset(n=64, obs_dim=3, act_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    info = DatasetInfo("toy", "file", None, obs_dim, act_dim, n)
    obs = rng.normal(size=(n, obs_dim)) * 2 + 1
    return from_arrays(
        obs, rng.uniform(-1, 1, (n, act_dim)), rng.normal(size=n), obs + rng.normal(size=obs.shape) * 0.1,
        (rng.uniform(size=n) < 0.2).astype(np.float32), info,
    )
