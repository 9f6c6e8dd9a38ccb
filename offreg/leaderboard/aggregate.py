"""Aggregate statistics of normalized scores, as the offline-RL field reports them.

Pure functions over plain arrays, independent of how the runs were produced:

- :func:`mean_std`: mean and population std over seeds (the primary per-dataset number);
- :func:`iqm`: the interquartile mean over all (seed, dataset) runs (Agarwal et al. 2021, "Deep RL
  at the Edge of the Statistical Precipice", the ``rliable`` library);
- :func:`stratified_bootstrap_ci`: percentile confidence intervals from a bootstrap that resamples
  seeds *within* each dataset (stratified), so every dataset keeps its weight;
- :func:`performance_profile`: the fraction of runs whose score exceeds each threshold tau.

Scores are given as a mapping ``dataset -> array of per-seed scores``; datasets may have different
numbers of seeds (a missing run shrinks its stratum rather than breaking the aggregate).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from offreg.errors import ConfigError

ScoreTable = Mapping[str, Sequence[float] | np.ndarray]


def _strata(scores: ScoreTable) -> list[np.ndarray]:
    strata = [np.asarray(v, np.float64).reshape(-1) for v in scores.values()]
    strata = [s for s in strata if s.size]
    if not strata:
        raise ConfigError("no scores to aggregate: every dataset has zero finished runs")
    return strata


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0) of per-seed scores."""
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


def iqm_of_runs(runs: np.ndarray) -> float:
    """Interquartile mean of a flat array of run scores: the mean of the middle 50%.

    Matches ``scipy.stats.trim_mean(runs, 0.25)``: ``floor(0.25 n)`` scores are cut from each end.
    """
    r = np.sort(np.asarray(runs, np.float64).reshape(-1))
    cut = int(0.25 * r.size)
    return float(r[cut : r.size - cut].mean())


def iqm(scores: ScoreTable) -> float:
    """Interquartile mean over every (dataset, seed) run pooled together."""
    return iqm_of_runs(np.concatenate(_strata(scores)))


def aggregate_mean(scores: ScoreTable) -> float:
    """Mean over datasets of the per-dataset mean over seeds."""
    return float(np.mean([s.mean() for s in _strata(scores)]))


def stratified_bootstrap_ci(
    scores: ScoreTable,
    statistic: Callable[[ScoreTable], float] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap confidence interval of ``statistic``.

    Each replicate resamples, with replacement, as many seeds as each dataset has, from that
    dataset's own seeds (stratified bootstrap), then applies ``statistic`` to the resampled table.

    Args:
      scores: ``dataset -> per-seed scores``.
      statistic: a function of a score table (``iqm``, ``aggregate_mean``, ...).
      reps: number of bootstrap replicates.
      confidence: two-sided level; the interval is the ``(1-c)/2`` and ``(1+c)/2`` percentiles.
      seed: seed of the bootstrap's own generator (reporting only; not the training path).

    Returns:
      ``(point, low, high)``.
    """
    if reps < 1:
        raise ConfigError(f"bootstrap reps must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    table = {k: np.asarray(v, np.float64).reshape(-1) for k, v in scores.items()}
    table = {k: v for k, v in table.items() if v.size}
    point = statistic(table)
    rng = np.random.default_rng(seed)
    stats = np.empty(reps)
    for b in range(reps):
        stats[b] = statistic({k: v[rng.integers(0, v.size, v.size)] for k, v in table.items()})
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(point), float(low), float(high)


def performance_profile(scores: ScoreTable, taus: Sequence[float] | np.ndarray) -> np.ndarray:
    """Run-score distribution: for each tau, the fraction of runs with score > tau.

    Each dataset's fraction is computed over its own seeds, then averaged over datasets (so every
    dataset weighs the same, as in ``rliable``'s score distributions).
    """
    strata = _strata(scores)
    taus = np.asarray(taus, np.float64)
    return np.mean([(s[None, :] > taus[:, None]).mean(axis=1) for s in strata], axis=0)
