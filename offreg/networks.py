"""Networks shared by every agent: MLPs, actors, twin critics, value nets.

Initialisation is a config choice. ``"torch"`` reproduces PyTorch's ``nn.Linear`` default that the
official codes use: kernel ``U(+-1/sqrt(fan_in))`` (kaiming-uniform, a=sqrt(5)) and bias
``U(+-1/sqrt(fan_in))``. ``"flax"`` is Flax's own default (lecun-normal kernel, zero bias).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}
INITS = ("torch", "flax")


def torch_bias_init(fan_in: int):
    """PyTorch's default ``nn.Linear`` bias init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / jnp.sqrt(jnp.float32(fan_in))

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Linear(nn.Module):
    """A dense layer with a choice of initialisation (``torch`` or ``flax``)."""

    features: int
    init: str = "torch"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.init == "torch":
            kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
            bias_init = torch_bias_init(x.shape[-1])
        else:
            kernel_init, bias_init = nn.initializers.lecun_normal(), nn.initializers.zeros
        return nn.Dense(self.features, kernel_init=kernel_init, bias_init=bias_init)(x)


class MLP(nn.Module):
    """``x -> [Linear -> (LayerNorm) -> act] * len(hidden_dims) -> Linear(out_dim)``.

    Attributes:
      hidden_dims: widths of the hidden layers.
      out_dim: output width.
      activation: a key of :data:`ACTIVATIONS`.
      layer_norm: LayerNorm (eps 1e-5, PyTorch's) after each hidden Linear, before the activation.
      init: ``torch`` or ``flax`` (see the module docstring).
    """

    hidden_dims: Sequence[int]
    out_dim: int
    activation: str = "relu"
    layer_norm: bool = False
    init: str = "torch"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for h in self.hidden_dims:
            x = Linear(h, self.init)(x)
            if self.layer_norm:
                x = nn.LayerNorm(epsilon=1e-5)(x)
            x = act(x)
        return Linear(self.out_dim, self.init)(x)


class DeterministicActor(nn.Module):
    """``pi(s) = max_action * tanh(MLP(s))``: TD3's actor. Shapes ``[..., obs] -> [..., act]``."""

    hidden_dims: Sequence[int]
    act_dim: int
    max_action: float = 1.0
    activation: str = "relu"
    init: str = "torch"

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        x = MLP(self.hidden_dims, self.act_dim, self.activation, False, self.init)(observations)
        return self.max_action * jnp.tanh(x)


class Critic(nn.Module):
    """``Q(s, a) = MLP([s || a])``, output squeezed to ``[...]``."""

    hidden_dims: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False
    init: str = "torch"

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([observations, actions], axis=-1)
        return MLP(self.hidden_dims, 1, self.activation, self.layer_norm, self.init)(x)[..., 0]


class EnsembleCritic(nn.Module):
    """``num`` independent critics evaluated in one vmapped call; output ``[num, ...]``.

    Each member has its own parameters (as two separate ``nn.Module`` critics in PyTorch); the
    first member is TD3's ``Q1``.
    """

    hidden_dims: Sequence[int]
    num: int = 2
    activation: str = "relu"
    layer_norm: bool = False
    init: str = "torch"

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        return ensemble(self.hidden_dims, self.activation, self.layer_norm, self.init)(observations, actions)


class ValueNet(nn.Module):
    """``V(s) = MLP(s)``, output squeezed to ``[...]``."""

    hidden_dims: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False
    init: str = "torch"

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return MLP(self.hidden_dims, 1, self.activation, self.layer_norm, self.init)(observations)[..., 0]


def polyak(target, online, tau):
    """``target <- tau * online + (1 - tau) * target`` over matching pytrees."""
    return jax.tree_util.tree_map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)
