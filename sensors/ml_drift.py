"""Drift → retrain: a drifted feature check on ``ml/gold/training_set`` requests a training run
of ``ml/gold/delay_model``.

The cursor is the storage id of the newest check evaluation looked at, so each failed
evaluation requests at most one run, and the run key (that storage id) makes a re-evaluated tick
idempotent. Stopped by default, like the other sensors that launch runs: start it in the UI.
"""

from __future__ import annotations

import dagster as dg

from assets.ml.common import DELAY_MODEL, TRAINING_SET
from assets.ml.feature_definitions import MODEL_FEATURES
from data_products.lib.compat.dagster import AssetCheckExecutionRecordStatus

DRIFT_CHECKS = [
    dg.AssetCheckKey(TRAINING_SET.asset_key, f"drift_{feature}") for feature in MODEL_FEATURES
]
RETRAIN_REASON_TAG = "ml/retrain_reason"


@dg.sensor(
    name="ml_drift_retrain",
    description="Requests a retraining run of ml/gold/delay_model when a drift check of "
    "ml/gold/training_set fails (KS p < 0.01 or PSI > 0.2 against the model's training window).",
    minimum_interval_seconds=60,
    asset_selection=[DELAY_MODEL.asset_key],
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def ml_drift_retrain(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    seen = int(context.cursor) if context.cursor else 0
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        DRIFT_CHECKS
    )
    newer = {key: record for key, record in latest.items() if record.id > seen}
    if not newer:
        return dg.SkipReason("no drift check evaluated since the last tick")
    drifted = sorted(
        key.name.removeprefix("drift_")
        for key, record in newer.items()
        if record.status == AssetCheckExecutionRecordStatus.FAILED
    )
    cursor = str(max(record.id for record in newer.values()))
    if not drifted:
        return dg.SensorResult(skip_reason="drift checks passed", cursor=cursor)
    context.log.info(f"drift in {', '.join(drifted)}: requesting a retrain")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"retrain:{cursor}",
                asset_selection=[DELAY_MODEL.asset_key],
                # Tag values are for people; the check results hold the statistics.
                tags={RETRAIN_REASON_TAG: f"{len(drifted)} drifted: {', '.join(drifted)}"[:250]},
            )
        ],
        cursor=cursor,
    )
