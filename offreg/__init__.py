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

Importing offreg changes no process state (no environment variables, no global seeding) and loads
no JAX: the names above are imported on first use.
"""

__version__ = "0.1.0"

_LAZY = {
    "TrainResult": "offreg.engine",
    "evaluate": "offreg.api",
    "load_agent": "offreg.checkpoint",
    "load_dataset": "offreg.api",
    "make_agent": "offreg.api",
    "save_agent": "offreg.checkpoint",
    "train": "offreg.engine",
}
"""The public API, loaded on first access: ``import offreg`` (and so ``offreg --help``) imports no JAX."""

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib  # noqa: PLC0415  (keeps `import offreg` free of JAX)

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'offreg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
