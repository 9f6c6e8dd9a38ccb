"""The one training engine: the jitted core (:mod:`.core`), the run directory (:mod:`.rundir`) and the
driver (:mod:`.driver`, :func:`train`)."""

from offreg.engine.core import create_seeds, dataset_context, scan_updates, train_chunk
from offreg.engine.driver import (
    DEFAULT_AGENT,
    DEFAULT_DATASET,
    DEFAULT_EVAL_EPISODES,
    DEFAULT_EVAL_EVERY,
    DEFAULT_STEPS,
    TrainResult,
    dataset_name,
    eval_seed,
    train,
)
from offreg.engine.rundir import RunSettings, read_run_config

__all__ = [
    "DEFAULT_AGENT", "DEFAULT_DATASET", "DEFAULT_EVAL_EPISODES", "DEFAULT_EVAL_EVERY", "DEFAULT_STEPS", "dataset_name",
    "RunSettings", "TrainResult", "create_seeds", "dataset_context", "eval_seed", "read_run_config",
    "scan_updates", "train", "train_chunk",
]
