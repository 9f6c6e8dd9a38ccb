"""offreg's own data: everything that generates a dataset, in one place.

- :mod:`~offreg.data.generate.collect`: the ``offreg collect`` pipeline (D4RL's recipe: SAC, snapshots,
  levels, HDF5 files).
- :mod:`~offreg.data.generate.sac`: the behaviour learner (SAC as in rlkit).
- :mod:`~offreg.data.generate.policy`: the behaviour policy (a sampled tanh-Gaussian snapshot, or uniform).
- :mod:`~offreg.data.generate.rollout`: collection rollouts in D4RL's per-row layout.
- :mod:`~offreg.data.generate.snapshots`: the ``.npz`` snapshot format of behaviour policies.
- :mod:`~offreg.data.generate.bundled`: ``offreg/<env>-<level>-v0``, rebuilt from files shipped with offreg.
- :mod:`~offreg.data.generate.r2pvi`: R2PVI's ``offreg/linear-mdp-v0`` and ``offreg/american-put-v0``.
- :mod:`~offreg.data.generate.toy_navigation`: O-DICE's toy dataset (returned in memory).

Files are written by :func:`offreg.data.d4rl.write_d4rl`, beside the reader. Generation uses the
environments of :mod:`offreg.envs` (the layer below ``data``); nothing in ``envs`` imports ``data``.
"""
