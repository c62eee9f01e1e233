"""``ml/serving/<view>``: the feature views' offline exports, one Parquet file per aviation day.

One multi-asset for the six views: they read the same silver flights, so one read serves all.
Each view stays its own asset in the catalog, with its own schema check and row counts. The
files are the Feast file sources (``assets/ml/feature_definitions.py``) and, through warehouse
views ``ml_serving.<view>``, plain SQL tables for anyone else.
"""

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from assets.ml import features
from assets.ml.common import (
    AVIATION_FLIGHTS,
    AVIATION_PLANES,
    AVIATION_ROTATIONS,
    AVIATION_WEATHER,
    PARTITIONS,
)
from assets.ml.feature_definitions import EVENT_TIMESTAMP, PARTITION_COLUMN, VIEWS, ViewSpec
from data_products.lib.contracts import load_contract_for
from data_products.lib.contracts.checks import schema_check
from data_products.lib.feast_store import feature_exports
from data_products.lib.partitions import describe_keys, run_dates
from resources.warehouse import WarehouseResource

_INPUTS: dict[str, list[dg.AssetKey]] = {
    "flight_schedule": [AVIATION_FLIGHTS.asset_key],
    "origin_delay": [AVIATION_FLIGHTS.asset_key],
    "carrier_delay": [AVIATION_FLIGHTS.asset_key],
    "route_delay": [AVIATION_FLIGHTS.asset_key],
    "origin_weather": [AVIATION_WEATHER.asset_key],
    "aircraft_delay": [AVIATION_ROTATIONS.asset_key, AVIATION_PLANES.asset_key],
}


def _spec(view: ViewSpec) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=view.dataset.asset_key,
        description=f"Feast offline export of the {view.name} feature view: {view.description}",
        kinds={"polars", "feast"},  # policy derives parquet and duckdb from the contract
        deps=_INPUTS[view.name],
        metadata={
            "feast/feature_view": view.name,
            "feast/entity": view.join_key,
        },
        skippable=False,
        tags={"tier": "features"},
    )


def _read(con: duckdb.DuckDBPyConnection, sql: str, first: date, last: date) -> pl.DataFrame:
    return con.execute(sql, [first, last]).pl()


def compute_exports(con: duckdb.DuckDBPyConnection, days: list[date]) -> dict[str, pl.DataFrame]:
    """Every view's rows for ``days``, from the aviation tables in the warehouse."""
    first, last = days[0], days[-1]
    flights = _read(
        con,
        f"SELECT * FROM {AVIATION_FLIGHTS.table} WHERE flight_date BETWEEN $1 AND $2",
        first - timedelta(days=features.SNAPSHOT_HISTORY_DAYS),
        last,
    )
    weather = _read(
        con,
        f"SELECT * FROM {AVIATION_WEATHER.table} WHERE partition_date BETWEEN $1 AND $2",
        first,
        last,
    )
    rotations = _read(
        con,
        f"SELECT tailnum, sched_dep_utc, dep_delay_min FROM {AVIATION_ROTATIONS.table} "
        "WHERE flight_date BETWEEN $1 AND $2",
        first - timedelta(days=features.AIRCRAFT_HISTORY_DAYS),
        last,
    )
    planes = con.execute(f"SELECT tailnum, year_built FROM {AVIATION_PLANES.table}").pl()
    in_run = flights.filter(pl.col("flight_date").is_between(first, last))
    return {
        "flight_schedule": features.flight_schedule(in_run),
        "origin_delay": features.origin_delay(flights, days),
        "carrier_delay": features.carrier_delay(flights, days),
        "route_delay": features.route_delay(flights, days),
        "origin_weather": features.origin_weather(weather),
        "aircraft_delay": features.aircraft_delay(rotations, planes, days),
    }


def _key_check(view: ViewSpec, frame: pl.DataFrame) -> dg.AssetCheckResult:
    """Feast needs one row per entity key and event timestamp: with two, which one a
    point-in-time join returns is arbitrary, and online and offline could disagree."""
    duplicates = frame.filter(pl.struct(view.join_key, EVENT_TIMESTAMP).is_duplicated())
    return dg.AssetCheckResult(
        asset_key=view.dataset.asset_key,
        check_name="one_row_per_key_and_time",
        passed=duplicates.is_empty(),
        description=f"{duplicates.height} rows share ({view.join_key}, {EVENT_TIMESTAMP})",
        metadata={
            "duplicate_rows": duplicates.height,
            "sample": dg.MetadataValue.md(str(duplicates.head(5))) if duplicates.height else "",
        },
    )


@dg.multi_asset(
    name="ml_feature_exports",
    specs=[_spec(view) for view in VIEWS],
    check_specs=[
        spec
        for view in VIEWS
        for spec in (
            dg.AssetCheckSpec(
                "schema",
                asset=view.dataset.asset_key,
                description="Rows match contracts/ml/<view>.yaml (types, required columns).",
                blocking=True,
            ),
            dg.AssetCheckSpec(
                "one_row_per_key_and_time",
                asset=view.dataset.asset_key,
                description="One row per entity key and event timestamp.",
                blocking=True,
            ),
        )
    ],
    partitions_def=PARTITIONS,
    description="Computes the six feature views' rows for the run's aviation days.",
)
def ml_feature_exports(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
    days = run_dates(context)
    exports = feature_exports()
    with warehouse.connect() as con:
        frames = compute_exports(con, days)
        for view in VIEWS:
            frame = frames[view.name]
            replaced = exports.replace_days(
                view.dataset, frame, day_column=PARTITION_COLUMN, days=days
            )
            exports.create_view(con, view.dataset)
            yield dg.MaterializeResult(
                asset_key=view.dataset.asset_key,
                metadata={
                    "dagster/row_count": frame.height,
                    "dagster/column_schema": dg.TableSchema(
                        columns=[dg.TableColumn(n, str(t)) for n, t in frame.schema.items()]
                    ),
                    # The files are what Feast reads: lineage names them, not the warehouse view.
                    "dagster/uri": dg.MetadataValue.url(
                        f"file://{exports.directory(view.dataset)}"
                    ),
                    "rows_replaced": replaced,
                    "entities": frame[view.join_key].n_unique(),
                    "partition_range": describe_keys([d.isoformat() for d in days]),
                },
            )
            yield schema_check(
                load_contract_for(view.dataset),
                frame,
                partitions=describe_keys([d.isoformat() for d in days]),
                key_uniqueness=True,
            )
            yield _key_check(view, frame)
    context.log.info(
        f"feature exports for {describe_keys([d.isoformat() for d in days])}: "
        + ", ".join(f"{name} {frame.height}" for name, frame in frames.items())
    )
