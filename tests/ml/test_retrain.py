"""Drift → retrain: drift injected into a real feature export reaches the training set's drift
checks, and the ml_drift_retrain sensor then requests exactly one retraining run of the model;
with every drift check passing it requests nothing.

Changes the package's data: day 2013-01-04 of the training set is rebuilt from a tampered
weather export (restored afterwards). Later modules read the online store and the model, which
this does not touch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import dagster as dg
import polars as pl
import pytest

from assets.ml.common import DELAY_MODEL, TRAINING_SET
from assets.ml.feature_definitions import VIEWS_BY_NAME
from data_products.cli.runs import materialize_slice
from data_products.lib.feast_store import feature_exports
from sensors.ml_drift import RETRAIN_REASON_TAG, ml_drift_retrain
from tests.ml.conftest import MlDomain

pytestmark = pytest.mark.slow
DAY = date(2013, 1, 4)


def _tick(ml_domain: MlDomain, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=ml_domain.instance, cursor=cursor)
    return ml_drift_retrain(context)


@pytest.fixture
def stormy_weather(ml_domain: MlDomain) -> Iterator[None]:
    """Jan 4's weather export with a gale and fog at every hour; the original bytes restored."""
    view = VIEWS_BY_NAME["origin_weather"]
    path = feature_exports().day_file(view.dataset, DAY)
    original = path.read_bytes()
    stormy = pl.read_parquet(path).with_columns(
        pl.col("wind_speed_mph") + 35, (pl.col("visib_mi") / 10).alias("visib_mi")
    )
    feature_exports().replace_days(view.dataset, stormy, day_column="partition_date", days=[DAY])
    yield
    path.write_bytes(original)


def test_no_retrain_while_drift_checks_pass(ml_domain: MlDomain) -> None:
    # The group run judged nothing (no model existed before it): every drift check passed.
    result = _tick(ml_domain, cursor=None)
    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests
    assert result.cursor


def test_injected_drift_requests_one_retrain(ml_domain: MlDomain, stormy_weather: None) -> None:
    cursor = _tick(ml_domain, cursor=None).cursor  # type: ignore[union-attr]
    run = materialize_slice(
        ml_domain.defs,
        dg.AssetSelection.assets(TRAINING_SET.asset_key),
        start=DAY.isoformat(),
        end=DAY.isoformat(),
        instance=ml_domain.instance,
        log_level="WARNING",
    )
    assert run.success, run.failed_steps
    drifted = {c.check for c in run.checks if c.check.startswith("drift_") and not c.passed}
    assert {"drift_wind_speed_mph", "drift_visib_mi", "drift_weather_severity"} <= drifted
    assert "drift_distance_mi" not in drifted

    result = _tick(ml_domain, cursor)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests or []
    assert request.asset_selection == [DELAY_MODEL.asset_key]
    assert request.tags[RETRAIN_REASON_TAG].startswith(f"{len(drifted)} drifted: ")
    # The same evaluations never request a second run.
    again = _tick(ml_domain, result.cursor)
    assert isinstance(again, dg.SkipReason)
