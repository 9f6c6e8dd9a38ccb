"""A2PR (Liu et al., ICML 2024): adaptive advantage-guided policy regularization on the TD3 backbone.

Reference: ``ltlhuuu/A2PR`` (``A2PR.py``, MIT). Per gradient step, after TD3's critic update
(:mod:`offreg.agents.td3`, critic ``theta+``, smoothed next action ``a~'``):

1. **Value.** ``y_V = min(r + g(1-d) min_i Q_theta+_i(s', a~'), r + g(1-d) min_i Q_theta'_i(s', a~'))``
   (the online-after-update and the target TD targets, same ``a~'``);
   ``L_V = mean_B (V_psi(s) - y_V)^2``; Adam (lr 3e-4). ``V_old = V_psi(s)`` *before* this step
   is kept for 2 and 3. No target V.
2. **VAE** (BCQ-style, advantage-filtered). ``(mu, sigma) = Enc(s, a)``, ``z = mu + sigma xi``,
   ``a^ = Dec(s, z)``; ``w = vae_weight * 1[Q_theta+_1(s, a) > V_old(s)]``;
   ``L_VAE = mean_{B x A} w (a^ - a)^2 + 0.5 mean_{B x Z} -1/2 (1 + log sigma^2 - mu^2 - sigma^2)``;
   Adam (lr 1e-3).
3. **Actor term** (every ``policy_freq`` steps, inside TD3's actor loss
   ``-lambda mean Q_1(s, pi) + R``): ``a_vae = Dec(s, Enc(s, pi(s)))`` with the updated VAE and fresh
   noise, **differentiable in pi**; ``A_vae = Q_1(s, a_vae) - V_old``, ``A_data = Q_1(s, a) - V_old``;
   ``a_bar = a_vae if A_vae >= A_data else a``; gate ``g = mask * (A_vae >= 0 OR A_data > 0)``;
   ``R = mean_{B x A} g (pi - a_bar)^2``.

The VAE is not used at evaluation: the policy is TD3's deterministic actor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from offreg.agents.base import NON_NEGATIVE, POSITIVE, WIDTHS
from offreg.agents.regularizers import CriticFns, Regularizer, RegularizerConfig, no_context
from offreg.errors import ConfigError
from offreg.networks import Linear, TrainState, ValueNet, adam
from offreg.types import Metrics, PRNGKey, Transitions


# --- the conditional VAE -------------------------------------------------------------------------
class VAE(nn.Module):
    """BCQ's conditional VAE as A2PR uses it: encode ``(s, a)``, reparameterise, decode ``(s, z)``.

    Encoder ``[s||a] -> 750 -> ReLU -> 750 -> ReLU`` with linear heads ``mean`` and ``log_std``
    (``Z`` each, ``log_std`` clamped to ``[-4, 15]``); decoder ``[s||z] -> 750 -> ReLU -> 750 -> ReLU
    -> A -> max_action * tanh``. ``z = mean + exp(log_std) * noise`` with the caller's ``noise``
    (unclipped; A2PR never samples the prior).

    Attributes:
      hidden_dims: hidden widths of the encoder and of the decoder.
      latent_dim: ``Z`` (A2PR: ``2 * act_dim``).
      act_dim: action dimension.
      max_action: bound of the decoded actions.
      init_scheme: ``torch`` or ``flax`` initialisation of every layer.
    """

    hidden_dims: Sequence[int]
    latent_dim: int
    act_dim: int
    max_action: float = 1.0
    init_scheme: str = "torch"

    def setup(self) -> None:
        self.enc = [Linear(h, self.init_scheme) for h in self.hidden_dims]
        self.mean = Linear(self.latent_dim, self.init_scheme)
        self.log_std = Linear(self.latent_dim, self.init_scheme)
        self.dec = [Linear(h, self.init_scheme) for h in self.hidden_dims]
        self.out = Linear(self.act_dim, self.init_scheme)

    def __call__(
        self, observations: jax.Array, actions: jax.Array, noise: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``([B, obs], [B, act], noise [B, Z]) -> (reconstruction [B, act], mean [B, Z], std [B, Z])``."""
        x = jnp.concatenate([observations, actions], axis=-1)
        for layer in self.enc:
            x = nn.relu(layer(x))
        mean = self.mean(x)
        std = jnp.exp(jnp.clip(self.log_std(x), -4.0, 15.0))
        z = mean + std * noise
        y = jnp.concatenate([observations, z], axis=-1)
        for layer in self.dec:
            y = nn.relu(layer(y))
        return self.max_action * jnp.tanh(self.out(y)), mean, std


# --- the regularizer -----------------------------------------------------------------------------
class A2PRState(NamedTuple):
    """A2PR's regularizer state.

    Attributes:
      value: ``V_psi`` and its Adam state (lr ``value_lr``; no target).
      prev_value_params: ``V_psi`` before this step's value update (gives ``V_old`` to the actor term).
      vae: the VAE ``omega`` and its Adam state (lr ``vae_lr``).
    """

    value: TrainState
    prev_value_params: Any
    vae: TrainState


@dataclasses.dataclass(frozen=True)
class A2PR(RegularizerConfig):
    """A2PR's value net, advantage-filtered VAE and adaptive BC term (``ltlhuuu/A2PR``).

    Defaults: value 4x256, VAE 750-750 with ``Z = 2 * act_dim``; Adam 3e-4 (value, hard-coded in the
    original) and 1e-3 (VAE, PyTorch's default there); mask = 1.0 (the ``A2PR`` class default;
    ``utils/config.py`` says 0.5), vae_weight = 1.0, KL coefficient 0.5. The backbone's registry
    entry sets A2PR's deeper actor (3x256) and critics (4x256); its discount, max_action (the VAE
    decoder's bound), activation and init (of ``V``; the VAE is ReLU like the original) are used
    here. Per-dataset values: ``offreg/configs/a2pr.json``.

    Attributes:
      value_hidden_dims: hidden widths of ``V(s)``.
      vae_hidden_dims: hidden widths of the VAE encoder and of its decoder.
      vae_latent_dim: latent size ``Z``; 0 means ``2 * act_dim``.
      value_lr: Adam learning rate of ``V``.
      vae_lr: Adam learning rate of the VAE.
      mask: weight of the adaptive BC term (sweepable).
      vae_weight: weight of the VAE's reconstruction term for positive-advantage actions (sweepable).
      kl_weight: coefficient of the VAE's KL term.
    """

    kind = "a2pr"
    sweepable = ("mask", "vae_weight")
    checks = {
        "value_hidden_dims": WIDTHS, "vae_hidden_dims": WIDTHS, "value_lr": POSITIVE, "vae_lr": POSITIVE,
        "vae_latent_dim": NON_NEGATIVE, "mask": NON_NEGATIVE, "vae_weight": NON_NEGATIVE, "kl_weight": NON_NEGATIVE,
    }

    value_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)
    vae_hidden_dims: tuple[int, ...] = (750, 750)
    vae_latent_dim: int = 0
    value_lr: float = 3e-4
    vae_lr: float = 1e-3
    mask: float = 1.0
    vae_weight: float = 1.0
    kl_weight: float = 0.5

    def build(self, backbone) -> Regularizer:
        """``update`` needs ``critic.next_actions`` (the TD3 backbone passes them)."""
        return _a2pr_functions(self, backbone.discount, backbone.max_action, backbone.activation, backbone.init)


def _a2pr_functions(cfg: A2PR, discount: float, max_action: float, activation: str, init: str) -> Regularizer:
    """The functions of :class:`A2PR` (see the module docstring for the maths).

    Long because: A2PR's init, update and loss are closures over its networks and optimizers (optax's style).
    """
    value_hidden_dims, vae_hidden_dims, latent_dim = cfg.value_hidden_dims, cfg.vae_hidden_dims, cfg.vae_latent_dim
    value_lr, vae_lr, kl_weight = cfg.value_lr, cfg.vae_lr, cfg.kl_weight
    value_net = ValueNet(tuple(value_hidden_dims), activation, False, init)

    def vae_net(act_dim: int) -> VAE:
        return VAE(tuple(vae_hidden_dims), latent_dim or 2 * act_dim, act_dim, max_action, init)

    def init_fn(key: PRNGKey, dataset: Any) -> A2PRState:
        obs_dim, act_dim = int(dataset.info.obs_dim), int(dataset.info.act_dim)
        vae = vae_net(act_dim)
        k_v, k_vae = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        value_params = value_net.init(k_v, obs)
        vae_params = vae.init(k_vae, obs, act, jnp.zeros((1, vae.latent_dim)))
        return A2PRState(
            value=TrainState.create(value_params, adam(value_lr)),
            prev_value_params=value_params,
            vae=TrainState.create(vae_params, adam(vae_lr)),
        )

    def update(state: A2PRState, batch: Transitions, critic: CriticFns, coefs, context, key: PRNGKey
               ) -> tuple[A2PRState, Metrics]:
        del context
        if critic.next_actions is None:
            raise ConfigError("A2PR's regularizer needs critic.next_actions (the smoothed a~'); use the TD3 backbone")
        act_dim = batch.actions.shape[-1]
        vae = vae_net(act_dim)
        obs, acts = batch.observations, batch.actions
        # --- value: min(online-after-update, target) TD targets with the same a~' ---
        bootstrap = discount * batch.masks
        y_on = batch.rewards + bootstrap * critic.q(batch.next_observations, critic.next_actions).min(axis=0)
        y_tgt = batch.rewards + bootstrap * critic.q_target(batch.next_observations, critic.next_actions).min(axis=0)
        y_v = jax.lax.stop_gradient(jnp.minimum(y_on, y_tgt))

        def value_loss_fn(params):
            v = value_net.apply(params, obs)
            return jnp.mean((v - y_v) ** 2), v

        (value_loss, v_old), grads = jax.value_and_grad(value_loss_fn, has_aux=True)(state.value.params)
        value = state.value.apply_gradients(grads)
        v_old = jax.lax.stop_gradient(v_old)

        # --- VAE: reconstruction of positive-advantage dataset actions only ---
        q_data = critic.q(obs, acts)[0]
        weight = coefs["vae_weight"] * (q_data > v_old).astype(jnp.float32)
        noise = jax.random.normal(key, (obs.shape[0], vae.latent_dim), obs.dtype)

        def vae_loss_fn(params):
            recon, mean, std = vae.apply(params, obs, acts, noise)
            recon_loss = jnp.mean(weight[:, None] * (recon - acts) ** 2)
            kl = jnp.mean(-0.5 * (1.0 + jnp.log(std**2) - mean**2 - std**2))
            return recon_loss + kl_weight * kl, (recon_loss, kl)

        (vae_loss, (recon_loss, kl)), grads = jax.value_and_grad(vae_loss_fn, has_aux=True)(state.vae.params)
        new_state = A2PRState(
            value=value, prev_value_params=state.value.params, vae=state.vae.apply_gradients(grads)
        )
        return new_state, {
            "value_loss": value_loss,
            "v": jnp.mean(v_old),
            "v_target": jnp.mean(y_v),
            "vae_loss": vae_loss,
            "vae_recon_loss": recon_loss,
            "vae_kl": kl,
            "positive_advantage_fraction": jnp.mean((q_data > v_old).astype(jnp.float32)),
        }

    def loss(state: A2PRState, observations, policy_actions, batch, critic, coefs, context, key):
        del context
        act_dim = policy_actions.shape[-1]
        vae = vae_net(act_dim)
        noise = jax.random.normal(key, (observations.shape[0], vae.latent_dim), observations.dtype)
        # The VAE's parameters are frozen here, but its reconstruction keeps its gradient w.r.t. pi.
        a_vae, _, _ = vae.apply(jax.lax.stop_gradient(state.vae.params), observations, policy_actions, noise)
        v_old = jax.lax.stop_gradient(value_net.apply(state.prev_value_params, observations))
        q_vae = jax.lax.stop_gradient(critic.q(observations, a_vae)[0])  # comparisons only
        q_data = critic.q(observations, batch.actions)[0]
        take_vae = q_vae >= q_data  # A_vae >= A_data; ties go to the VAE action
        target = jnp.where(take_vae[:, None], a_vae, batch.actions)
        gate = coefs["mask"] * jnp.logical_or(q_vae >= v_old, q_data > v_old).astype(jnp.float32)  # OR, not a sum
        bc = jnp.mean(gate[:, None] * (policy_actions - target) ** 2)
        return bc, {
            "bc_loss": bc,
            "vae_target_fraction": jnp.mean(take_vae.astype(bc.dtype)),
            "gate_fraction": jnp.mean((gate > 0).astype(bc.dtype)),
        }

    return Regularizer(init=init_fn, context=no_context, update=update, loss=loss)
