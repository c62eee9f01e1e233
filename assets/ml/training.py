"""``ml/gold/training_set``: departed flights of the run's days with their label and every feature
as of one second before the scheduled departure, through Feast's point-in-time join.

Checks: no feature may carry information from after the prediction time (``no_leakage``,
blocking: a leaky training set must not reach the model), the contract's schema, and one drift
check per model feature against the window the current model was trained on (warnings; the
``ml_drift_retrain`` sensor turns a drifted check into a retraining run).
"""

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
import numpy as np
import polars as pl

from assets.ml import artifacts
from assets.ml.common import (
    AVIATION_FLIGHTS,
    FEATURE_REGISTRY,
    PARTITIONS,
    TRAINING_SET,
)
from assets.ml.feature_definitions import EVENT_TIMESTAMP, MODEL_FEATURES, VIEWS
from assets.ml.features import training_entities
from data_products.lib.contracts import load_contract_for
from data_products.lib.contracts.checks import schema_check
from data_products.lib.drift import feature_drift
from data_products.lib.feast_store import (
    FeatureExports,
    feature_exports,
    feature_store,
    point_in_time_features,
    rows_in_reach,
)

if TYPE_CHECKING:
    from feast import FeatureStore
from data_products.lib.partitions import describe_keys, run_dates
from data_products.lib.tables import read_partitions, replace_partitions, table_exists
from resources.warehouse import WarehouseResource

CHUNK_DAYS = 7
"""Days per Feast join. The file store merges every entity row with every feature row of its key
in reach, so a chunk's work grows with the square of its days (a week of hourly weather against
a week of flights from the same airport); below a week, Feast's fixed cost per join (six joins
a chunk) takes over. Measured on January: see assets/ml/README.md."""
ENTITY_COLUMNS = [
    "flight_id",
    "partition_date",
    "carrier",
    "origin",
    "route",
    "tailnum",
    "sched_dep_utc",
    "predict_at",
    "dep_delay_min",
    "is_delayed",
]
KNOWN_AT_COLUMNS = [view.known_at for view in VIEWS]


def training_columns() -> list[str]:
    return [*ENTITY_COLUMNS, *MODEL_FEATURES, *KNOWN_AT_COLUMNS]


def build_training_set(
    store: "FeatureStore", entities: pl.DataFrame, exports: FeatureExports | None = None
) -> pl.DataFrame:
    """``entities`` (``features.training_entities``) with every view's model features and
    information time joined as of ``predict_at``; one row per entity row, same order.

    With ``exports``, Feast joins each view against only the export rows within reach of the
    entities' prediction times (their span widened by the view's TTL), read from the day files
    that hold them: a chunk's cost then depends on the chunk, not on how many days the exports
    hold. Without, it reads each view's whole registered source."""
    joined = entities
    for view in VIEWS:
        wanted = {name: view.polars_types[name] for name in [*view.model_features, view.known_at]}
        reach = rows_in_reach(entities["predict_at"], view.ttl)
        rows = (
            exports.read_window(view.dataset, *reach).select(
                view.join_key, EVENT_TIMESTAMP, *view.features
            )
            if exports is not None and reach is not None
            else None
        )
        joined = point_in_time_features(
            store,
            joined,
            view=view.name,
            join_key=view.join_key,
            features=wanted,
            timestamp_column="predict_at",
            feature_rows=rows,
        )
    return joined.select(training_columns())


def leakage_violations(training: pl.DataFrame) -> pl.DataFrame:
    """Rows where some feature's information time is after the prediction time, one row per
    (flight, view) with both times: must be empty."""
    predict_s = pl.col("predict_at").dt.epoch("s")
    columns = [c for c in KNOWN_AT_COLUMNS if c in training.columns]
    if not columns:
        raise ValueError(f"{TRAINING_SET}: no *_known_at_s column to check for leakage")
    return pl.concat(
        [
            training.filter(pl.col(column) > predict_s).select(
                "flight_id",
                "predict_at",
                pl.lit(column).alias("feature"),
                pl.from_epoch(pl.col(column), time_unit="s").alias("known_at"),
            )
            for column in columns
        ],
        how="vertical_relaxed",
    )


def leakage_check(training: pl.DataFrame) -> dg.AssetCheckResult:
    violations = leakage_violations(training)
    by_feature = violations.group_by("feature").len().sort("feature").rows()
    return dg.AssetCheckResult(
        asset_key=TRAINING_SET.asset_key,
        check_name="no_leakage",
        passed=violations.is_empty(),
        description=(
            f"every feature of {training.height} rows is known at or before its prediction time"
            if violations.is_empty()
            else f"{violations.height} feature values are known after the prediction time: "
            + ", ".join(f"{feature} {count}" for feature, count in by_feature)
        ),
        metadata={
            "violations": violations.height,
            "violations_by_feature": {feature: count for feature, count in by_feature},
            "sample": dg.MetadataValue.md(
                violations.head(10).to_pandas().to_markdown(index=False)
                if violations.height
                else "none"
            ),
        },
    )


def drift_checks(
    reference: pl.DataFrame | None, current: pl.DataFrame
) -> Iterator[dg.AssetCheckResult]:
    """One result per model feature: KS and PSI of the run's rows against the reference."""
    for feature in MODEL_FEATURES:
        name = f"drift_{feature}"
        if reference is None or reference.is_empty() or current.is_empty():
            yield dg.AssetCheckResult(
                asset_key=TRAINING_SET.asset_key,
                check_name=name,
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description="not judged: no trained model yet"
                if reference is None or reference.is_empty()
                else "not judged: every day of the run is in the model's training window",
                metadata={"judged": False},
            )
            continue
        result = feature_drift(
            feature,
            reference[feature].cast(pl.Float64).fill_null(np.nan).to_numpy(),
            current[feature].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        )
        yield dg.AssetCheckResult(
            asset_key=TRAINING_SET.asset_key,
            check_name=name,
            passed=not result.drifted,
            severity=dg.AssetCheckSeverity.WARN,
            description=result.reason(),
            metadata={
                "judged": result.judged,
                "drifted": result.drifted,
                "ks_statistic": result.ks_statistic,
                "ks_p_value": result.p_value,
                "psi": result.psi,
                "reference_rows": result.reference_rows,
                "current_rows": result.current_rows,
                "reference_null_share": result.reference_null_share,
                "current_null_share": result.current_null_share,
            },
        )


def _chunks(days: list[date]) -> Iterator[list[date]]:
    for i in range(0, len(days), CHUNK_DAYS):
        yield days[i : i + CHUNK_DAYS]


@dg.asset(
    key=TRAINING_SET.asset_key,
    description="Departed flights of each aviation day with the label (departure delay >= 15 "
    "min) and every model feature as of one second before the scheduled departure, joined "
    "point-in-time by Feast from the ml/serving exports. One row per departed flight.",
    kinds={"feast", "polars"},  # policy derives duckdb from the contract
    deps=[
        FEATURE_REGISTRY.asset_key,
        AVIATION_FLIGHTS.asset_key,
        *(v.dataset.asset_key for v in VIEWS),
    ],
    partitions_def=PARTITIONS,
    check_specs=[
        dg.AssetCheckSpec(
            "no_leakage",
            asset=TRAINING_SET.asset_key,
            description="No feature value is known after the flight's prediction time (one "
            "second before its scheduled departure).",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "schema",
            asset=TRAINING_SET.asset_key,
            description="Rows match the contract.",
            blocking=True,
        ),
        *(
            dg.AssetCheckSpec(
                f"drift_{feature}",
                asset=TRAINING_SET.asset_key,
                description=f"{feature}: KS p-value >= 0.01 and PSI <= 0.2 between the current "
                "model's training window and the run's days.",
            )
            for feature in MODEL_FEATURES
        ),
    ],
    tags={"tier": "ml"},
)
def training_set(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
    days = run_dates(context)
    store = feature_store()
    with warehouse.connect() as con:
        flights = con.execute(
            f"SELECT * FROM {AVIATION_FLIGHTS.table} WHERE flight_date BETWEEN $1 AND $2",
            [days[0], days[-1]],
        ).pl()
    exports = feature_exports()
    parts = []
    for chunk in _chunks(days):
        entities = training_entities(
            flights.filter(pl.col("flight_date").is_between(chunk[0], chunk[-1]))
        )
        parts.append(build_training_set(store, entities, exports))
    frame = pl.concat(parts) if parts else pl.DataFrame()
    stored = frame.with_columns(pl.col("sched_dep_utc", "predict_at").dt.replace_time_zone(None))
    model = artifacts.current_model()
    with warehouse.connect() as con:
        written = replace_partitions(
            con, TRAINING_SET, stored, partition_column="partition_date", partition_values=days
        )
        reference = None
        if model is not None and table_exists(con, TRAINING_SET):
            reference = read_partitions(
                con, TRAINING_SET, model.train_days(), columns=MODEL_FEATURES
            )
    # Days the model trained on are not "new" data: comparing them with themselves would only
    # dilute a shift in the days that are.
    trained_on = set(model.train_days()) if model else set()
    current = frame.filter(~pl.col("partition_date").is_in(list(trained_on)))
    metadata = written.metadata()
    # A boolean column's mean is a float; polars types Series.mean() for every dtype.
    metadata["delayed_share"] = dg.MetadataValue.float(
        cast(float, frame["is_delayed"].mean()) if frame.height else 0.0
    )
    metadata["cold_start_share"] = dg.MetadataValue.json(
        {
            view.name: cast(float, frame[view.known_at].is_null().mean()) if frame.height else 0.0
            for view in VIEWS
        }
    )
    metadata["drift_reference"] = dg.MetadataValue.text(
        f"model {model.version}: {describe_keys([d.isoformat() for d in model.train_days()])}"
        if model
        else "none (no trained model yet)"
    )
    yield dg.MaterializeResult(metadata=metadata)
    yield leakage_check(frame)
    yield schema_check(
        load_contract_for(TRAINING_SET),
        stored,
        partitions=describe_keys([d.isoformat() for d in days]),
        key_uniqueness=True,
    )
    yield from drift_checks(reference, current)
