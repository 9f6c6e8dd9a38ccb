"""The defaults of a training run, in a module that imports nothing, so the command line can show
them in ``offreg train --help`` without loading JAX (:mod:`offreg.engine` re-exports them)."""

DEFAULT_AGENT = "td3bc"


DEFAULT_DATASET = "offreg/hopper-medium-replay-v0"


DEFAULT_STEPS = 1_000_000
"""Gradient updates of a run: the 1M steps of the TD3+BC/PRDC/A2PR/O-DICE papers' locomotion tables."""


DEFAULT_EVAL_EVERY = 5000
"""TD3+BC's and PRDC's evaluation period (``eval_freq = 5e3``)."""


DEFAULT_EVAL_EPISODES = 10
