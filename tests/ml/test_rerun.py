"""Re-materialising the ml group over the package's days leaves every ml dataset as it was: the
feature exports (Parquet files behind warehouse views), the model registry table (its
``_trained_at`` load time aside: same training rows, same content-hashed version) and anything
in Iceberg or Delta.

The training set is left out of the re-run: a second evaluation of its drift checks, now against
the trained model's days, would be new evidence for the retrain sensor that ``test_retrain``
ticks. It is still compared, as an input the re-run must not touch."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.ml.common import TRAINING_SET
from data_products.cli.runs import materialize_slice
from tests.ml.conftest import END, START, MlDomain
from tests.snapshots import assert_same_snapshot, capture_home

pytestmark = pytest.mark.slow


def test_rematerialising_the_ml_group_gives_identical_datasets(ml_domain: MlDomain) -> None:
    before = capture_home(ml_domain.home, schema_prefix="ml_")
    assert {"duckdb:ml_serving.flight_schedule", "duckdb:ml_gold.delay_model"} <= before.keys()
    again = materialize_slice(
        ml_domain.defs,
        dg.AssetSelection.groups("ml") - dg.AssetSelection.assets(TRAINING_SET.asset_key),
        start=START,
        end=END,
        instance=ml_domain.instance,
        log_level="WARNING",
    )
    assert again.success, again.failed_steps
    assert "ml/gold/delay_model" in again.materialized
    assert_same_snapshot(before, capture_home(ml_domain.home, schema_prefix="ml_"))
