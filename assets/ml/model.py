"""``ml/gold/delay_model``: a gradient-boosting classifier of departure delays >= 15 minutes,
trained on every materialised day of the training set, evaluated on its latest days.

The split is by time, not at random: the last ``HOLDOUT_SHARE`` of days are held out, so the
holdout asks what production asks (predict days the model has not seen, after the ones it
has). The naive baseline scores each flight by its carrier's delay rate over the previous 30
days; a model that does not beat it is not worth serving (a warning check says so).

The artifact is versioned by content hash (``assets/ml/artifacts.py``); the asset's table
``ml_gold.delay_model`` keeps one row per version trained, with its windows and metrics.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from assets.ml import artifacts
from assets.ml.common import DELAY_MODEL, TRAINING_SET
from assets.ml.feature_definitions import MODEL_FEATURES
from data_products.lib.tables import read_table, replace_table, table_exists
from resources.warehouse import WarehouseResource

HOLDOUT_SHARE = 0.2
BASELINE_FEATURE = "carrier_delay_rate_30d"
RANDOM_STATE = 13


def time_split(
    frame: pl.DataFrame, *, holdout_share: float = HOLDOUT_SHARE
) -> tuple[list[date], list[date]]:
    """(training days, holdout days): the last ``holdout_share`` of the days (at least one)."""
    days = frame["partition_date"].unique().sort().to_list()
    if len(days) < 2:
        raise ValueError(
            f"{TRAINING_SET}: {len(days)} day(s) of training data; a time-based split needs two"
        )
    holdout = max(1, round(len(days) * holdout_share))
    return days[:-holdout], days[-holdout:]


def cold_start_defaults(train: pl.DataFrame) -> dict[str, float]:
    """The training medians: what a feature reads as when its entity has no value (an unseen
    aircraft or route), in training and serving alike."""
    medians = train.select(pl.col(MODEL_FEATURES).cast(pl.Float64).median()).row(0, named=True)
    return {name: float(value) if value is not None else 0.0 for name, value in medians.items()}


def feature_matrix(frame: pl.DataFrame, defaults: dict[str, float]) -> np.ndarray:
    return frame.select(
        pl.col(name).cast(pl.Float64).fill_null(defaults[name]).fill_nan(defaults[name])
        for name in MODEL_FEATURES
    ).to_numpy()


def train_model(frame: pl.DataFrame) -> artifacts.ModelBundle:
    """Fit on the training days, score the holdout days, return the bundle with its metrics."""
    # scikit-learn is imported here: at module level it added 2.2 s to every code-location load.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    train_days, holdout_days = time_split(frame)
    train = frame.filter(pl.col("partition_date").is_in(train_days))
    holdout = frame.filter(pl.col("partition_date").is_in(holdout_days))
    defaults = cold_start_defaults(train)
    estimator = HistGradientBoostingClassifier(
        max_iter=120, learning_rate=0.1, early_stopping=False, random_state=RANDOM_STATE
    )
    estimator.fit(feature_matrix(train, defaults), train["is_delayed"].to_numpy())
    labels = holdout["is_delayed"].to_numpy()
    scores = estimator.predict_proba(feature_matrix(holdout, defaults))[:, 1]
    baseline = (
        holdout[BASELINE_FEATURE].cast(pl.Float64).fill_null(defaults[BASELINE_FEATURE]).to_numpy()
    )
    one_class = len(np.unique(labels)) < 2
    metrics = {
        "holdout_roc_auc": float("nan") if one_class else float(roc_auc_score(labels, scores)),
        "baseline_roc_auc": float("nan") if one_class else float(roc_auc_score(labels, baseline)),
        "train_rows": float(train.height),
        "holdout_rows": float(holdout.height),
        "holdout_delayed_share": float(labels.mean()) if len(labels) else float("nan"),
    }
    return artifacts.ModelBundle(
        estimator=estimator,
        features=list(MODEL_FEATURES),
        defaults=defaults,
        train_start=train_days[0].isoformat(),
        train_end=train_days[-1].isoformat(),
        holdout_start=holdout_days[0].isoformat(),
        holdout_end=holdout_days[-1].isoformat(),
        metrics=metrics,
    )


@dg.asset(
    key=DELAY_MODEL.asset_key,
    description="HistGradientBoostingClassifier predicting a departure delay of 15 minutes or "
    "more from the training set; time-based split (last 20 % of days held out); holdout ROC "
    "AUC next to a naive baseline (the carrier's 30-day delay rate). One row per model version "
    "(content hash of the artifact under the data home).",
    kinds={"sklearn"},  # the engine; policy derives duckdb from the contract
    deps=[TRAINING_SET.asset_key],
    check_specs=[
        dg.AssetCheckSpec(
            "beats_baseline",
            asset=DELAY_MODEL.asset_key,
            description="Holdout ROC AUC above the naive baseline's.",
        )
    ],
    tags={"tier": "ml"},
)
def delay_model(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
    with warehouse.connect() as con:
        if not table_exists(con, TRAINING_SET):
            raise RuntimeError(f"{TRAINING_SET} has no rows yet: materialise it first")
        frame = read_table(con, TRAINING_SET)
    bundle = train_model(frame)
    pointer = artifacts.save_bundle(bundle)
    row = pl.DataFrame(
        {
            "model_version": [pointer.version],
            "artifact_path": [pointer.path],
            "_trained_at": [datetime.now(UTC).replace(tzinfo=None)],
            "train_start": [date.fromisoformat(bundle.train_start)],
            "train_end": [date.fromisoformat(bundle.train_end)],
            "holdout_start": [date.fromisoformat(bundle.holdout_start)],
            "holdout_end": [date.fromisoformat(bundle.holdout_end)],
            "train_rows": [int(bundle.metrics["train_rows"])],
            "holdout_rows": [int(bundle.metrics["holdout_rows"])],
            "holdout_roc_auc": [bundle.metrics["holdout_roc_auc"]],
            "baseline_roc_auc": [bundle.metrics["baseline_roc_auc"]],
        }
    )
    with warehouse.connect() as con:
        history = read_table(con, DELAY_MODEL) if table_exists(con, DELAY_MODEL) else row.clear()
        versions = pl.concat(
            [history.filter(pl.col("model_version") != pointer.version), row],
            how="vertical_relaxed",
        ).sort("_trained_at")
        written = replace_table(con, DELAY_MODEL, versions)
    auc, baseline = bundle.metrics["holdout_roc_auc"], bundle.metrics["baseline_roc_auc"]
    context.log.info(f"model {pointer.version}: holdout AUC {auc:.3f}, baseline {baseline:.3f}")
    metadata = written.metadata()
    metadata.update(
        {
            "dagster/uri": dg.MetadataValue.url(f"file://{pointer.path}"),
            "model_version": dg.MetadataValue.text(pointer.version),
            "holdout_roc_auc": dg.MetadataValue.float(auc),
            "baseline_roc_auc": dg.MetadataValue.float(baseline),
            "train_window": dg.MetadataValue.text(f"{bundle.train_start}...{bundle.train_end}"),
            "holdout_window": dg.MetadataValue.text(
                f"{bundle.holdout_start}...{bundle.holdout_end}"
            ),
            "train_rows": dg.MetadataValue.int(int(bundle.metrics["train_rows"])),
            "holdout_rows": dg.MetadataValue.int(int(bundle.metrics["holdout_rows"])),
        }
    )
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="beats_baseline",
        passed=bool(auc > baseline),
        severity=dg.AssetCheckSeverity.WARN,
        description=f"holdout ROC AUC {auc:.3f} vs naive baseline {baseline:.3f}",
        metadata={"holdout_roc_auc": auc, "baseline_roc_auc": baseline},
    )
