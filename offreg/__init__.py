"""offreg: JAX offline reinforcement learning with policy regularization toward the data.

The public API::

    import offreg

    dataset = offreg.load_dataset("offreg/hopper-medium-replay-v0")
    agent = offreg.make_agent("td3bc", dataset, seed=0, alpha=2.5)
    result = offreg.train("td3bc", dataset, steps=10_000, seeds=3, out_dir="runs/demo")
    offreg.evaluate(result.agent(seed=0), dataset, episodes=10)
    offreg.save_agent(result.agent(), "agent.msgpack")
    agent = offreg.load_agent("runs/demo")          # a run directory or a checkpoint file
    actions = agent.act(dataset.transitions.observations[:5])   # raw observations [B, obs_dim]

Importing offreg changes no process state (no environment variables, no global seeding).
"""

__version__ = "0.1.0"

from offreg.api import evaluate, load_dataset, make_agent  # noqa: E402
from offreg.checkpoint import load_agent, save_agent  # noqa: E402
from offreg.engine import TrainResult, train  # noqa: E402  (binds ``offreg.train`` to the function)

__all__ = [
    "TrainResult",
    "__version__",
    "evaluate",
    "load_agent",
    "load_dataset",
    "make_agent",
    "save_agent",
    "train",
]
