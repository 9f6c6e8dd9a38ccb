"""O-DICE: offline RL with orthogonal-gradient DICE (Mao, Xu, Zhang, Zhan, ICLR 2024).

O-DICE learns only a state value ``V_theta`` (twin heads) by minimising the V-DICE objective with
the Pearson chi-square ``f(x) = (x - 1)^2``::

    L(theta) = (1 - lambda) E_D[V(s)] + lambda E_D[f*(r + gamma (1 - d) V(s') - V(s))]

and splits the gradient of the ``f*`` term in two: the *forward* gradient ``g_f`` flows through
``V(s)`` (with ``V(s')`` from the EMA target), the *backward* gradient ``g_b`` through ``V(s')``
(with ``V(s)`` from the target). ``eta * g_b`` is projected onto the plane orthogonal to ``g_f``,
globally over every value parameter, whatever the sign of ``<g_f, g_b>``::

    g = g_v + g_f + (g_b - c g_f),   c = <g_f, g_b> / max(<g_f, g_f>, 1e-10)

The policy is a Gaussian with a state-independent log-std, extracted by weighted behaviour
cloning with ``w = min(max(0, delta_f), 100)``. ``update_rule`` selects the paper's ablation:
``orthogonal`` (O-DICE), ``true`` (T-DICE, full gradient) or ``semi`` (S-DICE, semi-gradient).
Offline imitation (one expert trajectory, zero rewards) is ``expert_trajectory >= 0``.
Every formula and default follows ``maoliyuan/ODICE-Pytorch`` as described in docs/odice.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from offreg.agents.base import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    WIDTHS,
    AgentConfig,
    Rule,
    check_config,
    coefficients,
    one_of,
)
from offreg.agents.odice_losses import UPDATE_RULES, bc_weight, value_gradient
from offreg.data.core import from_arrays, normalize
from offreg.errors import ConfigError, DatasetError
from offreg.networks import INITS, EnsembleValue, GaussianPolicy, TrainState, adam, gaussian_log_prob
from offreg.types import Metrics, PRNGKey, Transitions

# --- config --------------------------------------------------------------------------------------
UNIT_OPEN_CLOSED = Rule("in (0, 1]", lambda v: 0 < v <= 1)


@dataclasses.dataclass(frozen=True)
class ODICEConfig(AgentConfig):
    """O-DICE hyperparameters (offline-RL defaults of ``configs/offline_RL.yaml``).

    Objective: ``(1 - lambda_) E[V(s)] + lambda_ E[f*(r + discount (1 - d) V(s') - V(s))]`` with
    the orthogonal-gradient update; policy by weighted BC (Mao et al., ICLR 2024, arXiv 2402.00348).

    Attributes:
      normalize_observations: off in RL (the official code passes mean 0, std 1); on in imitation.
      reward_transform: ``none`` by default; the presets (offreg/configs/odice.json) set
        ``locomotion_iql`` (``r * 1000 / (max - min)`` over IQL's return range) for halfcheetah,
        hopper and walker2d, and ``antmaze`` (with ``reward_scale=3, reward_shift=-3``: -3/0) for AntMaze.
      reward_scale: scale of the ``antmaze``/``affine`` transform (3: ``r in {0,1} -> {-3, 0}``).
      reward_shift: shift of the ``antmaze``/``affine`` transform (-3).
      update_rule: ``orthogonal`` (O-DICE), ``true`` (T-DICE) or ``semi`` (S-DICE).
      lambda_: the DICE trade-off lambda in (0, 1]; weight of the f* term (sweepable).
      eta: strength of the projected backward gradient, folded in before projecting (sweepable).
      discount: gamma.
      beta: EMA rate of the target value net, ``target <- (1 - beta) target + beta online``.
      value_lr: Adam learning rate of V (no weight decay).
      policy_lr: Adam learning rate of the policy.
      policy_weight_decay: coupled L2 on the policy (PyTorch ``Adam(weight_decay=...)``, not AdamW).
      value_hidden_dims: hidden widths of each V head.
      policy_hidden_dims: hidden widths of the policy mean network.
      layer_norm: LayerNorm (eps 1e-5) after each hidden Linear of V (off for AntMaze and imitation).
      twin_v: two V heads regressed on the shared min target (single V for some AntMaze sets).
      tanh_mean: squash the policy mean with tanh (imitation only).
      log_std_min: lower clip of the policy log-std.
      log_std_max: upper clip of the policy log-std.
      weight_max: cap of the BC weight ``min(max(0, delta_f), weight_max)``.
      projection_eps: floor of ``<g_f, g_f>`` in the projection coefficient.
      init: ``torch`` (PyTorch's nn.Linear default, as the official code) or ``flax``.
      expert_trajectory: imitation mode when >= 0: train on that one complete episode of the
        dataset with all rewards set to 0; -1 (default) is offline RL.
    """

    sweepable: ClassVar[tuple[str, ...]] = ("lambda_", "eta")
    checks = {
        "update_rule": one_of(UPDATE_RULES), "lambda_": UNIT_OPEN_CLOSED, "beta": UNIT_OPEN_CLOSED,
        "discount": UNIT_INTERVAL, "eta": NON_NEGATIVE, "policy_weight_decay": NON_NEGATIVE, "value_lr": POSITIVE,
        "policy_lr": POSITIVE, "weight_max": POSITIVE, "projection_eps": POSITIVE, "init": one_of(INITS),
        "expert_trajectory": Rule(">= 0 (imitation) or -1 (offline RL)", lambda v: v >= -1),
        "value_hidden_dims": WIDTHS, "policy_hidden_dims": WIDTHS,
    }

    normalize_observations: bool = False
    reward_transform: str = "none"
    reward_scale: float = 3.0
    reward_shift: float = -3.0
    update_rule: str = "orthogonal"
    lambda_: float = 0.6
    eta: float = 1.0
    discount: float = 0.99
    beta: float = 0.005
    value_lr: float = 2e-4
    policy_lr: float = 2e-4
    policy_weight_decay: float = 1e-4
    value_hidden_dims: tuple[int, ...] = (256, 256)
    policy_hidden_dims: tuple[int, ...] = (1024, 1024)
    layer_norm: bool = True
    twin_v: bool = True
    tanh_mean: bool = False
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    weight_max: float = 100.0
    projection_eps: float = 1e-10
    init: str = "torch"
    expert_trajectory: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(Rule(f"greater than log_std_min ({self.log_std_min})", lambda v: v > self.log_std_min),
                     "log_std_max")

    def prepare(self, dataset: Any) -> Any:
        """The data this config trains on: in imitation mode, :func:`imitation_dataset` (idempotent)."""
        if self.expert_trajectory < 0:
            return super().prepare(dataset)
        return imitation_dataset(dataset, self.expert_trajectory, self.normalize_observations, self.obs_norm_eps)

    @classmethod
    def imitation(cls, expert_trajectory: int = 1, **overrides: Any) -> ODICEConfig:
        """The offline-imitation settings (``maoliyuan/ODICE-Pytorch:configs/offline_IL.yaml``, ``run_offline_il.sh``).

        lr 1e-4 for V and policy, policy weight decay 1e-5 (the launch script uses 1e-3 for
        walker2d), no LayerNorm, tanh policy mean, observation normalization with eps 1e-3,
        lambda 0.4, eta 1.0, twin V, no reward transform (rewards are zeroed). Train 500k steps.
        """
        base = dict(
            expert_trajectory=expert_trajectory, value_lr=1e-4, policy_lr=1e-4, policy_weight_decay=1e-5,
            layer_norm=False, tanh_mean=True, normalize_observations=True, obs_norm_eps=1e-3,
            lambda_=0.4, eta=1.0, reward_transform="none",
        )
        return cls.from_dict({**base, **overrides})  # type: ignore[return-value]


# --- imitation data ------------------------------------------------------------------------------
IMITATION_KEY = "imitation_episode"


def imitation_dataset(dataset: Any, index: int, normalize: bool, eps: float) -> Any:
    """Episode ``index`` of ``dataset`` as a dataset of its own: raw observation scale, every reward 0,
    observations standardized with the episode's own mean and std + ``eps`` when ``normalize``.

    The engine then samples O-DICE's batches from it like from any dataset. Episodes are the
    dataset's complete episodes (``episode_starts``/``episode_ends``); with D4RL's
    ``qlearning_dataset`` semantics a timed-out episode has no transition across its end, so the
    official code's one bogus transition into the next trajectory is not reproduced. Idempotent: the
    result records ``info.extra["imitation_episode"]``.

    Raises:
      DatasetError: the dataset has no complete episodes.
      ConfigError: ``index`` is out of range.
    """
    if dataset.info.extra.get(IMITATION_KEY) == index:
        return dataset
    starts = np.asarray(dataset.episode_starts, np.int64)
    if starts.size == 0:
        raise DatasetError(
            f"dataset {dataset.info.name!r} has no complete episodes, so O-DICE imitation has no "
            "trajectory to pick; use a dataset with episode boundaries or expert_trajectory=-1"
        )
    if not 0 <= index < starts.size:
        raise ConfigError(
            f"ODICEConfig.expert_trajectory={index} but dataset {dataset.info.name!r} has {starts.size} "
            f"episodes; choose 0..{starts.size - 1}"
        )
    ends = getattr(dataset, "episode_ends", None)
    start = int(starts[index])
    if ends is not None:
        end = int(ends[index])
    else:
        end = int(starts[index + 1]) if index + 1 < starts.size else len(dataset)
    host = jax.tree_util.tree_map(lambda x: np.asarray(x)[start:end], dataset.transitions)
    info = dataset.info
    obs, next_obs = host.observations, host.next_observations
    if info.obs_mean is not None:  # undo the loader's normalization
        mean, std = np.asarray(info.obs_mean, np.float32), np.asarray(info.obs_std, np.float32)
        obs, next_obs = obs * std + mean, next_obs * std + mean
    n = end - start
    episode_info = dataclasses.replace(
        info, num_transitions=n, num_episodes=1, obs_mean=None, obs_std=None,
        extra={**info.extra, IMITATION_KEY: index},
    )
    episode = from_arrays(obs, host.actions, np.zeros(n, np.float32), next_obs, host.terminals, episode_info,
                          episode_starts=[0], episode_returns=[0.0], episode_lengths=[n])
    return episode.normalize_observations(eps) if normalize else episode


# --- agent ---------------------------------------------------------------------------------------
def _value_net(config: ODICEConfig) -> EnsembleValue:
    return EnsembleValue(config.value_hidden_dims, 2 if config.twin_v else 1, "relu", config.layer_norm, config.init)


def _policy_net(config: ODICEConfig, act_dim: int) -> GaussianPolicy:
    return GaussianPolicy(
        config.policy_hidden_dims, act_dim, config.log_std_min, config.log_std_max, "relu", config.init,
        tanh_mean=config.tanh_mean,
    )


def _optimizers(config: ODICEConfig) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    return adam(config.value_lr), adam(config.policy_lr, weight_decay=config.policy_weight_decay)


class ODICE(flax.struct.PyTreeNode):
    """The O-DICE agent (immutable pytree).

    Attributes:
      value: twin V parameters (leaves with a leading head axis), their Adam state and EMA target.
      policy: Gaussian policy parameters (mean MLP and ``log_std``) and their Adam + coupled-L2 state.
      coefs: the sweepable coefficients ``lambda_``, ``eta`` as float32 scalars.
      obs_mean: ``[obs]`` observation normalization mean (0 when off).
      obs_std: ``[obs]`` observation normalization std (1 when off).
      step: number of updates taken.
      config: the static hyperparameters.
      act_dim: static action dimension.
    """

    value: TrainState
    policy: TrainState
    coefs: dict[str, jax.Array]
    obs_mean: jax.Array
    obs_std: jax.Array
    step: jax.Array
    config: ODICEConfig = flax.struct.field(pytree_node=False)
    act_dim: int = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, config: ODICEConfig, dataset: Any, key: PRNGKey, context: Any = ()) -> ODICE:
        """Initialise from the dataset the engine trains on (``config.prepare`` is applied: in
        imitation mode the expert episode, see :func:`imitation_dataset`)."""
        check_config(cls, config, ODICEConfig)
        info = config.prepare(dataset).info
        obs_dim, act_dim = info.obs_dim, info.act_dim
        mean, std = info.observation_stats()
        k_value, k_policy = jax.random.split(key)
        dummy = jnp.zeros((1, obs_dim), jnp.float32)
        value_params = _value_net(config).init(k_value, dummy)
        policy_params = _policy_net(config, act_dim).init(k_policy, dummy)
        value_tx, policy_tx = _optimizers(config)
        return cls(
            value=TrainState.create(value_params, value_tx, target=True),
            policy=TrainState.create(policy_params, policy_tx),
            coefs=coefficients(config),
            obs_mean=mean,
            obs_std=std,
            step=jnp.int32(0),
            config=config,
            act_dim=act_dim,
        )

    def update(self, batch: Transitions, key: PRNGKey, context: Any = ()) -> tuple[ODICE, Metrics]:
        """One O-DICE step: value gradient and Adam step, EMA target, weighted-BC policy step.

        The policy weight uses ``delta_f`` from before the value update (the official order).
        """
        del key, context
        cfg = self.config
        value_net, policy_net = _value_net(cfg), _policy_net(cfg, self.act_dim)

        # --- value ---
        g, delta_f, metrics = value_gradient(
            value_net.apply, self.value.params, self.value.target_params, batch,
            self.coefs["lambda_"], self.coefs["eta"], cfg.discount, cfg.update_rule, cfg.projection_eps,
        )
        value = self.value.apply_gradients(g).update_target(cfg.beta)

        # --- policy (weighted BC) ---
        weight = jax.lax.stop_gradient(bc_weight(delta_f, cfg.weight_max))

        def policy_loss(params):
            mean, log_std = policy_net.apply(params, batch.observations)
            return jnp.mean(weight * -gaussian_log_prob(mean, log_std, batch.actions))

        p_loss, p_grad = jax.value_and_grad(policy_loss)(self.policy.params)

        metrics.update(policy_loss=p_loss, bc_weight_mean=jnp.mean(weight))
        agent = self.replace(value=value, policy=self.policy.apply_gradients(p_grad), step=self.step + 1)
        return agent, metrics

    def act(self, observations: jax.Array) -> jax.Array:
        """Deterministic action: the policy mean on normalized observations, clipped to [-1, 1].

        Shapes ``[..., obs] -> [..., act]``.
        """
        obs = normalize(observations, self.obs_mean, self.obs_std)
        mean, _ = _policy_net(self.config, self.act_dim).apply(self.policy.params, obs)
        return jnp.clip(mean, -1.0, 1.0)

    def state_value(self, observations: jax.Array) -> jax.Array:
        """``min`` over the online V heads on raw observations, ``[..., obs] -> [...]``."""
        obs = normalize(observations, self.obs_mean, self.obs_std)
        return jnp.min(_value_net(self.config).apply(self.value.params, obs), axis=0)
