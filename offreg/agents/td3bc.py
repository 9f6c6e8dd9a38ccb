"""TD3+BC (Fujimoto & Gu 2021): the TD3 backbone plus behaviour cloning toward the batch action.

``max_pi  E_(s,a)~D [ lambda Q_1(s, pi(s)) - (pi(s) - a)^2 ]``, ``lambda = alpha / mean_B |Q_1(s, pi(s))|``,
with states standardized by the dataset's mean and std (+1e-3). Everything else is TD3 (see
:mod:`offreg.agents.td3`).
"""

from __future__ import annotations

import dataclasses

from offreg.agents.base import register
from offreg.agents.regularizers import Regularizer, behaviour_cloning
from offreg.agents.td3 import TD3Agent, TD3Config


@dataclasses.dataclass(frozen=True)
class TD3BCConfig(TD3Config):
    """TD3+BC's hyperparameters; the official defaults (``sfujim/TD3_BC``) are TD3Config's defaults.

    alpha = 2.5, policy noise 0.2, noise clip 0.5, policy delay 2, tau = 0.005, Adam 3e-4, batch 256,
    256-256 ReLU networks with PyTorch init, observation normalization with eps 1e-3.
    """

    def build_regularizer(self) -> Regularizer:
        """``mean_{B x A} (pi(s) - a)^2`` toward the batch's own action."""
        return behaviour_cloning()


@register(
    "td3bc",
    TD3BCConfig,
    "TD3 with a behaviour-cloning term and Q normalized by alpha / mean|Q|",
    paper="Fujimoto & Gu 2021, A Minimalist Approach to Offline Reinforcement Learning, arXiv 2106.06860",
)
class TD3BCAgent(TD3Agent):
    """TD3+BC: :class:`TD3Agent` with :class:`TD3BCConfig` (the BC regularizer)."""
