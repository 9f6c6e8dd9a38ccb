"""PRDC (Ran et al., ICML 2023): TD3+BC with a dataset constraint toward the nearest dataset pair.

``max_pi E_s [ lambda Q_1(s, pi(s)) - (pi(s) - a_nn(s))^2 ]``, ``lambda = alpha / mean_B |Q_1(s, pi(s))|``,
where ``(s_j, a_nn)`` is the dataset row whose key ``[beta * s_j, a_j]`` is nearest (Euclidean, exact)
to ``[beta * s, stopgrad(pi(s))]`` over the *whole* dataset (states normalized, actions raw).
The target is a constant: no gradient flows through the lookup. ``beta -> inf`` gives TD3+BC
(the batch row itself); ``beta -> 0`` the nearest dataset action anywhere. Everything else is the
TD3 backbone (:mod:`offreg.agents.td3`). Reference: ``LAMDA-RL/PRDC`` (``prdc.py``, ``main.py``).

The search runs inside the jitted update (:mod:`offreg.agents.neighbours`): an exact branch and bound
over a KD-tree built once per dataset (and cached on disk), vectorized across the batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents.base import AT_LEAST_ONE, POSITIVE, Rule
from offreg.agents.neighbour_index import MAX_BLOCK, NeighbourIndex, build_or_load
from offreg.agents.neighbours import nearest
from offreg.agents.regularizers import Regularizer, RegularizerConfig, no_state, no_update


@dataclasses.dataclass(frozen=True)
class PRDC(RegularizerConfig):
    """PRDC's dataset constraint ``mean_{B x A} (pi(s) - a_nn)^2`` (``LAMDA-RL/PRDC``).

    Defaults are the official ones (beta = 2.0 as in the ``PRDC`` class and every README command;
    ``utils/config.py`` says 1.0); the backbone keeps TD3+BC's alpha = 2.5, 256-256 networks, policy
    delay 2, tau = 0.005, Adam 3e-4, batch 256, observation normalization with eps 1e-3.
    Per-dataset values: ``offreg/configs/prdc.json``.

    Attributes:
      beta: scale of the normalized state in the key ``[beta * s, a]`` (sweepable: reaches the loss
        through ``coefs``; the index does not depend on it).
      k: which neighbour is the target (the official ``k``); only the nearest, ``k = 1``, is supported.
      index_leaf_size: most rows per leaf of the search's KD-tree (speed only, not results).
      search_capacity: (query, node) pairs the first batched tree search holds (speed/memory only).
      search_chunk: queries per chunk of the last-resort scan (speed only).
      search_block: dataset rows per step of the last-resort scan (speed/memory only).
    """

    kind = "prdc"
    sweepable = ("beta",)
    checks = {
        "beta": POSITIVE, "k": Rule("1 (the nearest neighbour, as every published command)", lambda k: k == 1),
        "index_leaf_size": Rule(">= 2", lambda n: n >= 2), "search_capacity": AT_LEAST_ONE,
        "search_chunk": AT_LEAST_ONE,
        "search_block": Rule(f"in [1, {MAX_BLOCK}]", lambda b: 1 <= b <= MAX_BLOCK),
    }

    beta: float = 2.0
    k: int = 1
    index_leaf_size: int = 8
    search_capacity: int = 16384
    search_chunk: int = 16
    search_block: int = 2048

    def build(self, backbone) -> Regularizer:
        """``context`` builds the index over the prepared dataset; ``loss`` reports ``dc_loss``,
        ``nn_distance`` (mean key distance), ``certified_fraction`` (answered by the first batched
        pass), ``fallback_chunks`` and ``leaves_per_query`` (see :class:`offreg.agents.neighbours.SearchResult`)."""
        del backbone

        def context(dataset) -> NeighbourIndex:  # built once per dataset, ever: cached on disk
            t = dataset.transitions
            return build_or_load(np.asarray(t.observations), np.asarray(t.actions),
                                 leaf_size=self.index_leaf_size)

        def loss(state, observations, policy_actions, batch, critic, coefs, index: NeighbourIndex, key):
            del state, critic, key
            res = nearest(index, coefs["beta"], observations, jax.lax.stop_gradient(policy_actions),
                          self.search_capacity, self.search_chunk, self.search_block, hint_actions=batch.actions)
            target = jax.lax.stop_gradient(res.action)
            dc = jnp.mean((policy_actions - target) ** 2)
            return dc, {
                "dc_loss": dc,
                "nn_distance": jnp.mean(jnp.sqrt(res.dist_sq)),
                "certified_fraction": jnp.mean(res.certified.astype(dc.dtype)),
                "fallback_chunks": res.fallback_chunks.astype(dc.dtype),
                "leaves_per_query": res.leaves_per_query.astype(dc.dtype),
            }

        return Regularizer(init=no_state, context=context, update=no_update, loss=loss)
