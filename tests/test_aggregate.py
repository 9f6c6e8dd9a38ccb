"""Aggregation statistics against independent computations (scipy, explicit loops)."""

import itertools

import numpy as np
import pytest
from scipy import stats

from offreg.errors import ConfigError
from offreg.leaderboard.aggregate import (
    aggregate_mean,
    iqm,
    mean_std,
    performance_profile,
    stratified_bootstrap_ci,
)


def test_mean_std_and_iqm_match_scipy():
    rng = np.random.default_rng(1)
    table = {"a": rng.normal(50, 10, 5), "b": rng.normal(80, 5, 5), "c": rng.normal(20, 30, 5)}
    m, s = mean_std(table["a"])
    assert m == pytest.approx(np.mean(table["a"])) and s == pytest.approx(np.std(table["a"], ddof=0))
    pooled = np.concatenate(list(table.values()))
    assert iqm(table) == pytest.approx(stats.trim_mean(pooled, 0.25))
    assert aggregate_mean(table) == pytest.approx(np.mean([v.mean() for v in table.values()]))


def test_iqm_by_hand():
    # 8 runs: drop the 2 lowest and the 2 highest, average the middle 4.
    assert iqm({"x": [0, 100, 1, 2, 3, 4, 50, 60]}) == pytest.approx((2 + 3 + 4 + 50) / 4)


def test_stratified_bootstrap_exact_distribution():
    # With 2 datasets x 2 seeds the bootstrap distribution of the mean-of-means is enumerable:
    # each stratum resample is one of 4 equally likely ordered pairs.
    table = {"a": np.array([0.0, 10.0]), "b": np.array([100.0, 300.0])}
    outcomes = []
    for ia, ib in itertools.product(itertools.product(range(2), repeat=2), repeat=2):
        outcomes.append((table["a"][list(ia)].mean() + table["b"][list(ib)].mean()) / 2)
    outcomes = np.array(outcomes)
    point, low, high = stratified_bootstrap_ci(table, aggregate_mean, reps=20000, seed=3)
    assert point == pytest.approx(102.5)
    # the lowest and highest outcomes each have probability 1/16 > 2.5%, so the percentiles are exact
    assert low == pytest.approx(np.percentile(outcomes, 2.5, method="inverted_cdf"), abs=1e-9)
    assert high == pytest.approx(np.percentile(outcomes, 97.5, method="inverted_cdf"), abs=1e-9)
    # strata are never mixed: the mean of "a"-only resamples stays within [0, 10]
    _, lo_a, hi_a = stratified_bootstrap_ci({"a": table["a"]}, aggregate_mean, reps=500)
    assert 0.0 <= lo_a <= hi_a <= 10.0


def test_performance_profile_by_hand():
    table = {"a": [10.0, 20.0, 30.0, 40.0], "b": [0.0, 100.0]}
    prof = performance_profile(table, [5.0, 25.0, 50.0])
    np.testing.assert_allclose(prof, [(1.0 + 0.5) / 2, (0.5 + 0.5) / 2, (0.0 + 0.5) / 2])


def test_bad_input():
    with pytest.raises(ConfigError, match="no scores"):
        iqm({"a": []})
    with pytest.raises(ConfigError, match="reps"):
        stratified_bootstrap_ci({"a": [1.0]}, reps=0)
