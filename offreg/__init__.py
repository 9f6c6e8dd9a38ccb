"""offreg: JAX offline reinforcement learning with policy regularization toward the data."""

__version__ = "0.1.0"
