"""Shared types: the transition vocabulary every module speaks."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax

Array = jax.Array
PRNGKey = jax.Array
Metrics = dict[str, Any]


@flax.struct.dataclass
class Transitions:
    """A batch (or a whole dataset) of transitions, D4RL's words, leading axis = transitions.

    Attributes:
      observations: float32 ``[N, obs_dim]``.
      actions: float32 ``[N, act_dim]``.
      rewards: float32 ``[N]``.
      next_observations: float32 ``[N, obs_dim]``.
      terminals: float32 ``[N]``; 1.0 where the episode terminated (no bootstrap), else 0.0.
        Time-limit truncations are never terminals.
    """

    observations: Array
    actions: Array
    rewards: Array
    next_observations: Array
    terminals: Array

    @property
    def masks(self) -> Array:
        """``1 - terminals``: the bootstrap mask of a TD target."""
        return 1.0 - self.terminals

    def __len__(self) -> int:
        return int(self.rewards.shape[0])
