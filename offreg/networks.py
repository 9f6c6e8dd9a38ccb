"""Networks shared by every agent: MLPs, actors, twin critics, value nets, and what travels with them.

:class:`TrainState` groups one network's parameters, optimizer state and target parameters (jaxrl_m's
``TrainState``, CORL ReBRAC's ``CriticTrainState``).

Initialisation is a config choice. ``"torch"`` reproduces PyTorch's ``nn.Linear`` default that the
official codes use: kernel ``U(+-1/sqrt(fan_in))`` (kaiming-uniform, a=sqrt(5)) and bias
``U(+-1/sqrt(fan_in))``. ``"flax"`` is Flax's own default (lecun-normal kernel, zero bias).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

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
    init_scheme: str = "torch"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.init_scheme == "torch":
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
      init_scheme: ``torch`` or ``flax`` (see the module docstring).
    """

    hidden_dims: Sequence[int]
    out_dim: int
    activation: str = "relu"
    layer_norm: bool = False
    init_scheme: str = "torch"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for h in self.hidden_dims:
            x = Linear(h, self.init_scheme)(x)
            if self.layer_norm:
                x = nn.LayerNorm(epsilon=1e-5)(x)
            x = act(x)
        return Linear(self.out_dim, self.init_scheme)(x)


class DeterministicActor(nn.Module):
    """``pi(s) = max_action * tanh(MLP(s))``: TD3's actor. Shapes ``[..., obs] -> [..., act]``."""

    hidden_dims: Sequence[int]
    act_dim: int
    max_action: float = 1.0
    activation: str = "relu"
    init_scheme: str = "torch"

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        x = MLP(self.hidden_dims, self.act_dim, self.activation, False, self.init_scheme)(observations)
        return self.max_action * jnp.tanh(x)


class _ScalarHead(nn.Module):
    """The fields of :class:`Critic` and :class:`ValueNet`: an :class:`MLP` with one output, squeezed."""

    hidden_dims: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False
    init_scheme: str = "torch"

    def head(self, x: jax.Array) -> jax.Array:
        """``MLP(x)[..., 0]``: ``[..., in] -> [...]`` (call it from a compact ``__call__``)."""
        return MLP(self.hidden_dims, 1, self.activation, self.layer_norm, self.init_scheme)(x)[..., 0]


class Critic(_ScalarHead):
    """``Q(s, a) = MLP([s || a])``, output squeezed to ``[...]``."""

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        return self.head(jnp.concatenate([observations, actions], axis=-1))


class ValueNet(_ScalarHead):
    """``V(s) = MLP(s)``, output squeezed to ``[...]``."""

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return self.head(observations)


class _Ensemble(nn.Module):
    """``num`` independently initialised copies of the scalar head ``member``, stacked on a leading axis.

    Each member has its own parameters (as separate ``nn.Module`` nets in PyTorch), all evaluated in
    one vmapped call.
    """

    member: ClassVar[type[_ScalarHead]]

    hidden_dims: Sequence[int]
    num: int = 2
    activation: str = "relu"
    layer_norm: bool = False
    init_scheme: str = "torch"

    def members(self) -> nn.Module:
        """The lifted ``member`` (call it from a compact ``__call__``): outputs ``[num, ...]``."""
        lifted = nn.vmap(
            self.member, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None, out_axes=0,
            axis_size=self.num,
        )
        return lifted(self.hidden_dims, self.activation, self.layer_norm, self.init_scheme)


class EnsembleCritic(_Ensemble):
    """``num`` :class:`Critic` s: ``([..., obs], [..., act]) -> [num, ...]``; member 0 is TD3's ``Q1``."""

    member = Critic

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        return self.members()(observations, actions)


class EnsembleValue(_Ensemble):
    """``num`` :class:`ValueNet` s: ``[..., obs] -> [num, ...]`` (O-DICE's twin V, ``num=2``)."""

    member = ValueNet

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return self.members()(observations)


class _Gaussian(nn.Module):
    """The fields of the Gaussian policies: ``act_dim`` means from ``hidden_dims``, a clipped log-std.

    Attributes:
      hidden_dims: widths of the hidden layers.
      act_dim: action dimension.
      log_std_min: lower clip of the log-std (see :meth:`clip`).
      log_std_max: upper clip of the log-std.
      activation: a key of :data:`ACTIVATIONS`.
      init_scheme: ``torch`` or ``flax`` (see the module docstring).
    """

    hidden_dims: Sequence[int]
    act_dim: int
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    activation: str = "relu"
    init_scheme: str = "torch"

    def clip(self, log_std: jax.Array) -> jax.Array:
        """``log_std`` clipped to ``[log_std_min, log_std_max]`` (zero gradient outside)."""
        return jnp.clip(log_std, self.log_std_min, self.log_std_max)


class GaussianPolicy(_Gaussian):
    """Diagonal Gaussian with a state-independent learnable ``log_std`` (IQL/O-DICE's policy).

    ``mean = MLP(s)`` (``tanh(MLP(s))`` if ``tanh_mean``); ``log_std`` is a ``[act_dim]`` parameter
    initialised to 0 and clipped. Returns ``(mean [..., act], log_std [act])``; see
    :func:`gaussian_log_prob`.
    """

    tanh_mean: bool = False

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = MLP(self.hidden_dims, self.act_dim, self.activation, False, self.init_scheme)(observations)
        if self.tanh_mean:
            mean = jnp.tanh(mean)
        return mean, self.clip(self.param("log_std", nn.initializers.zeros, (self.act_dim,)))


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """``log N(actions; mean, diag(exp(log_std))^2)`` summed over the last axis, constant included.

    ``-1/2 sum_i ((a_i - mu_i) / sigma_i)^2 - sum_i log sigma_i - d/2 log(2 pi)``; shapes
    ``[..., d]`` -> ``[...]``.
    """
    z = (actions - mean) * jnp.exp(-log_std)
    d = actions.shape[-1]
    return -0.5 * jnp.sum(z**2, axis=-1) - jnp.sum(log_std, axis=-1) - 0.5 * d * jnp.log(2.0 * jnp.pi)


class TanhGaussianActor(_Gaussian):
    """SAC's policy (rlkit's ``TanhGaussianPolicy``, the behaviour policy of D4RL's locomotion data).

    ``a = tanh(u)``, ``u ~ N(mean(s), diag(exp(log_std(s)))^2)``: a ReLU trunk (``fc0, fc1, ...``)
    with two heads, ``mean`` (rlkit's ``last_fc``) and ``log_std`` (``last_fc_log_std``), the
    latter clipped to ``[log_std_min, log_std_max]``. Returns ``(mean [..., act], log_std [..., act])``
    of the pre-tanh Gaussian.
    """

    log_std_min: float = -20.0

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = observations
        for h in self.hidden_dims:
            x = ACTIVATIONS[self.activation](Linear(h, self.init_scheme)(x))
        mean = Linear(self.act_dim, self.init_scheme, name="mean")(x)
        return mean, self.clip(Linear(self.act_dim, self.init_scheme, name="log_std")(x))


# --- training state ------------------------------------------------------------------------------
@functools.cache
def adam(learning_rate: float, weight_decay: float | None = None) -> optax.GradientTransformation:
    """``optax.adam``; with ``weight_decay``, PyTorch's coupled L2 (``Adam(weight_decay=...)``) before it.

    One object per arguments, so that two agents built alike hold the very same (static) optimizer
    and their pytree structures compare equal (a loaded checkpoint equals the saved agent).
    """
    if weight_decay is None:
        return optax.adam(learning_rate)
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


class TrainState(flax.struct.PyTreeNode):
    """One network's parameters, its optimizer state and its target parameters, moving together.

    Attributes:
      params: the online parameters.
      opt_state: ``tx``'s state.
      target_params: the Polyak-averaged copy (see :meth:`update_target`), or ``None`` for a network
        without a target.
      tx: the optimizer (static; build it with :func:`adam` so equal agents compare equal).
    """

    params: Any
    opt_state: Any
    target_params: Any
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation, target: bool = False) -> TrainState:
        """Fresh optimizer state; the target (when ``target``) starts as a copy of ``params``."""
        return cls(params=params, opt_state=tx.init(params), target_params=params if target else None, tx=tx)

    def apply_gradients(self, grads: Any) -> TrainState:
        """One optimizer step: ``params <- params + tx.update(grads)``; the target is untouched."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state)

    def update_target(self, tau: Any) -> TrainState:
        """Polyak averaging ``target <- tau * params + (1 - tau) * target`` (``optax.incremental_update``)."""
        return self.replace(target_params=optax.incremental_update(self.params, self.target_params, tau))

