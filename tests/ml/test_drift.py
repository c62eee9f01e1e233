"""Drift statistics: PSI and the KS test judge a stable sample stable and a shifted one drifted,
on synthetic data and on the real training set of the package's four aviation days."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from assets.ml.training import drift_checks
from data_products.lib.drift import MIN_ROWS, feature_drift, psi
from tests.ml.conftest import MlDomain


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 20_000)
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    assert psi(reference, rng.normal(0, 1, 5_000)) < 0.02
    assert psi(reference, rng.normal(1, 1, 5_000)) > 0.2


def test_psi_keeps_ties_in_one_bin() -> None:
    # Mostly zeros (precipitation): the same share of zeros on both sides is no drift.
    reference = np.concatenate([np.zeros(900), np.linspace(0.01, 1, 100)])
    current = np.concatenate([np.zeros(450), np.linspace(0.01, 1, 50)])
    assert psi(reference, current) == pytest.approx(0.0, abs=1e-9)


def test_feature_drift_on_stable_shifted_and_too_small_samples() -> None:
    rng = np.random.default_rng(2)
    reference = rng.exponential(10, 30_000)
    stable = feature_drift("delay", reference, rng.exponential(10, 900))
    assert stable.judged and not stable.drifted, stable.reason()
    shifted = feature_drift("delay", reference, rng.exponential(10, 900) + 8)
    assert shifted.drifted and shifted.p_value is not None and shifted.p_value < 0.01
    with_nulls = np.concatenate([rng.exponential(10, 900), np.full(100, np.nan)])
    assert feature_drift("delay", reference, with_nulls).current_null_share == pytest.approx(0.1)
    small = feature_drift("delay", reference, rng.exponential(10, MIN_ROWS - 1))
    assert not small.judged and not small.drifted


@pytest.mark.slow
def test_real_features_stable_on_the_next_day_and_drifted_when_shifted(ml_domain: MlDomain) -> None:
    training = ml_domain.table("SELECT * FROM ml_gold.training_set")
    reference = training.filter(pl.col("partition_date") < pl.date(2013, 1, 4))
    next_day = training.filter(pl.col("partition_date") == pl.date(2013, 1, 4))
    # The schedule's shape (distances, departure hours) is stable from day to day...
    results = {r.check_name: r for r in drift_checks(reference, next_day)}
    for feature in ("distance_mi", "sched_dep_hour"):
        assert results[f"drift_{feature}"].passed, results[f"drift_{feature}"].description
    # ... and a partition where flights got longer and later is caught.
    shifted = next_day.with_columns(
        pl.col("distance_mi") * 1.6, ((pl.col("sched_dep_hour") + 5) % 24).alias("sched_dep_hour")
    )
    results = {r.check_name: r for r in drift_checks(reference, shifted)}
    for feature in ("distance_mi", "sched_dep_hour"):
        check = results[f"drift_{feature}"]
        assert not check.passed and check.metadata["drifted"].value is True, check.description
