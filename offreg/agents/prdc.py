"""PRDC (Ran et al., ICML 2023): TD3+BC with a dataset constraint toward the nearest dataset pair.

``max_pi E_s [ lambda Q_1(s, pi(s)) - (pi(s) - a_nn(s))^2 ]``, ``lambda = alpha / mean_B |Q_1(s, pi(s))|``,
where ``(s_j, a_nn)`` is the dataset row whose key ``[beta * s_j, a_j]`` is nearest (Euclidean, exact)
to ``[beta * s, stopgrad(pi(s))]`` over the *whole* dataset (states normalized, actions raw).
The target is a constant: no gradient flows through the lookup. ``beta -> inf`` gives TD3+BC
(the batch row itself); ``beta -> 0`` the nearest dataset action anywhere. Everything else is the
TD3 backbone (:mod:`offreg.agents.td3`). Reference: ``LAMDA-RL/PRDC`` (``prdc.py``, ``main.py``).

The search runs inside the jitted update (:mod:`offreg.agents.neighbours`): certified candidates
from a once-per-dataset state-space index, and an exact blocked brute-force scan for the rest.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents.base import register
from offreg.agents.neighbours import MAX_BLOCK, NeighbourIndex, build_index, nearest
from offreg.agents.regularizers import Regularizer, no_update
from offreg.agents.td3 import TD3Agent, TD3Config
from offreg.errors import ConfigError

_INDEX_CACHE: collections.OrderedDict = collections.OrderedDict()


def _cached_index(states, actions, k: int) -> NeighbourIndex:
    """:func:`build_index`, memoized on the arrays' contents (the engine creates one agent per seed)."""
    s, a = np.ascontiguousarray(np.asarray(states, np.float32)), np.ascontiguousarray(np.asarray(actions, np.float32))
    digest = hashlib.blake2b(s.tobytes() + a.tobytes(), digest_size=16).hexdigest()
    key = (digest, s.shape, a.shape, k)
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = build_index(s, a, k=k)
        while len(_INDEX_CACHE) > 2:
            _INDEX_CACHE.popitem(last=False)
    _INDEX_CACHE.move_to_end(key)
    return _INDEX_CACHE[key]


class PRDCState(NamedTuple):
    """PRDC's regularizer state.

    Attributes:
      index: the neighbour-search index over the (normalized) dataset.
      beta: float32 scalar, the state scale of the key (an array, so it can be vmapped).
    """

    index: NeighbourIndex
    beta: jax.Array


def prdc_regularizer(
    beta: float = 2.0, index_candidates: int = 32, search_chunk: int = 8, search_block: int = 256
) -> Regularizer:
    """PRDC's dataset constraint ``mean_{B x A} (pi(s) - a_nn)^2``.

    Args:
      beta: state scale of the key ``[beta * s, a]`` (stored in the state as an array).
      index_candidates: state-space neighbours kept per dataset row (``K`` of the index).
      search_chunk: queries per fallback scan.
      search_block: sorted dataset rows per step of that scan (at most 4096).

    Returns:
      A :class:`Regularizer`. ``init`` builds the index on the host from the preprocessed dataset the
      agent trains on; ``loss`` reports ``dc_loss``, ``nn_distance`` (mean key distance),
      ``certified_fraction``, ``fallback_chunks`` and ``fallback_rows`` (see ``SearchResult``).
    """
    if beta <= 0:
        raise ConfigError(f"PRDC beta must be > 0, got {beta}")

    def init(key, dataset) -> PRDCState:
        del key
        t = dataset.transitions
        return PRDCState(_cached_index(t.observations, t.actions, index_candidates), jnp.float32(beta))

    def loss(state: PRDCState, observations, policy_actions, batch, critic, key):
        del batch, critic, key
        res = nearest(
            state.index, state.beta, observations, jax.lax.stop_gradient(policy_actions), search_chunk, search_block
        )
        target = jax.lax.stop_gradient(res.action)
        dc = jnp.mean((policy_actions - target) ** 2)
        return dc, {
            "dc_loss": dc,
            "nn_distance": jnp.mean(jnp.sqrt(res.dist_sq)),
            "certified_fraction": jnp.mean(res.certified.astype(dc.dtype)),
            "fallback_chunks": res.fallback_chunks.astype(dc.dtype),
            "fallback_rows": res.fallback_rows.astype(dc.dtype),
        }

    return Regularizer(init=init, update=no_update, loss=loss)


@dataclasses.dataclass(frozen=True)
class PRDCConfig(TD3Config):
    """PRDC's hyperparameters (``LAMDA-RL/PRDC``): TD3+BC's, plus the key scale ``beta``.

    Defaults are the official ones (alpha = 2.5, beta = 2.0 as in the ``PRDC`` class and every README
    command; ``utils/config.py`` says 1.0), 256-256 networks, policy delay 2, tau = 0.005, Adam 3e-4,
    batch 256, observation normalization with eps 1e-3. Per-dataset values: ``offreg/configs/prdc.json``.

    Attributes:
      beta: scale of the normalized state in the key ``[beta * s, a]`` (kept as an array in ``reg_state``).
      k: which neighbour is the target (the official ``k``); only the nearest, ``k = 1``, is supported.
      index_candidates: neighbours per dataset row in the search index (speed/memory only, not results).
      search_chunk: queries per fallback scan (speed only).
      search_block: dataset rows per step of that scan (speed/memory only).
    """

    beta: float = 2.0
    k: int = 1
    index_candidates: int = 32
    search_chunk: int = 8
    search_block: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ConfigError(f"PRDCConfig.beta must be > 0, got {self.beta}")
        if self.k != 1:
            raise ConfigError(
                f"PRDCConfig.k must be 1 (the nearest neighbour, as every published command), got {self.k}"
            )
        for f in ("index_candidates", "search_chunk", "search_block"):
            if getattr(self, f) < 1:
                raise ConfigError(f"PRDCConfig.{f} must be >= 1, got {getattr(self, f)}")
        if self.search_block > MAX_BLOCK:
            raise ConfigError(f"PRDCConfig.search_block must be <= {MAX_BLOCK}, got {self.search_block}")

    def build_regularizer(self) -> Regularizer:
        """The dataset constraint toward the nearest ``[beta * s, a]`` row."""
        return prdc_regularizer(self.beta, self.index_candidates, self.search_chunk, self.search_block)


@register(
    "prdc",
    PRDCConfig,
    "TD3 with a constraint toward the nearest dataset state-action pair (exact search on the device)",
    paper="Ran et al. 2023, Policy Regularization with Dataset Constraint for Offline RL, arXiv 2306.06569",
)
class PRDCAgent(TD3Agent):
    """PRDC: :class:`TD3Agent` with :class:`PRDCConfig` (the dataset-constraint regularizer)."""
