"""The CDC assets: one run applies one micro-batch of the replication slot to every sink.

One multi-asset rather than one asset per sink because the slot may only advance after *all*
sinks committed: that ordering has to live in one step. Each source table still shows as its own
mirror and history asset, with lineage from its Postgres table (an external asset named
``postgres://host:port/db.schema.table``).
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl
from pyiceberg.table import Table

from assets.cdc.oltp import TABLES
from assets.cdc.runtime import build_pipeline
from data_products.lib.cdc.lsn import format_lsn, parse_lsn
from data_products.lib.cdc.pipeline import NAMESPACE, BatchResult, CdcPipeline, TableSinks
from data_products.lib.cdc.schema import KEY_COLUMN, KEY_SEPARATOR
from data_products.lib.cdc.timetravel import read_history_as_of
from data_products.lib.cdc.verify import compare, row_hashes, source_view
from data_products.lib.keys import asset_key
from data_products.lib.lineage.naming import REPLICAS_KEY, URI_METADATA_KEY
from resources.lake import LakeResource
from resources.postgres import PostgresResource

LSN_START_TAG = "cdc/lsn_start"
LSN_END_TAG = "cdc/lsn_end"
CONSISTENCY_CHECK = "consistent_with_source"
HISTORY_CHECK = "replays_to_mirror"
_DEFAULT_PORT = PostgresResource.model_fields["port"].default
_DEFAULT_DB = PostgresResource.model_fields["database"].default

_DESCRIPTIONS = {
    "warehouses": "Warehouses (id, name, city, capacity).",
    "products": "Products (SKU, name, category, unit price; weight added later).",
    "customers": "Customers (email, name -- renamed display_name at source --, country).",
    "stock_levels": "Stock per (warehouse, product), the hottest table.",
}


def source_key(table: str) -> dg.AssetKey:
    return asset_key("cdc", "source", table)


def mirror_key(table: str) -> dg.AssetKey:
    return asset_key("cdc", "silver", table)


def history_key(table: str) -> dg.AssetKey:
    return asset_key("cdc", "silver", f"{table}_history")


sources = [
    dg.AssetSpec(
        source_key(table),
        description=f"PostgreSQL table public.{table} of the inventory database. "
        + _DESCRIPTIONS[table],
        metadata={  # policy derives the postgres kind from the URI
            URI_METADATA_KEY: f"postgres://localhost:{_DEFAULT_PORT}/{_DEFAULT_DB}.public.{table}"
        },
    )
    for table in TABLES
]


def _specs() -> list[dg.AssetSpec]:
    """Built in a function: a module-level list of specs would be discovered a second time."""
    return [
        spec
        for table in TABLES
        for spec in (
            dg.AssetSpec(
                mirror_key(table),
                description=f"Mirror of public.{table}: its current rows, in Iceberg "
                f"({NAMESPACE}.{table}) and Delta, as of the last applied LSN.",
                deps=[source_key(table)],
                kinds={"polars"},  # policy derives iceberg and delta from the contract
            ),
            dg.AssetSpec(
                history_key(table),
                description=f"SCD2 history of public.{table}: every version with valid_from/to, "
                "their LSNs, is_current and the operation (Iceberg).",
                deps=[source_key(table)],
                kinds={"polars"},
            ),
        )
    ]


def _checks() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            HISTORY_CHECK,
            asset=history_key(table),
            description="The history replayed at the applied LSN equals the Iceberg mirror "
            "(by key and content hash): versions are closed and current flags are right.",
            blocking=True,
        )
        for table in TABLES
    ] + [
        dg.AssetCheckSpec(
            CONSISTENCY_CHECK,
            asset=mirror_key(table),
            description="Iceberg and Delta mirrors equal the source as of the batch's LSN (row by "
            "row, by key and content hash); reports the consistency rate and the replication lag.",
            blocking=True,
        )
        for table in TABLES
    ]


@dg.multi_asset(
    name="cdc_replication",
    specs=_specs(),
    check_specs=_checks(),
    description="Apply the replication slot's next micro-batch to the Iceberg and Delta "
    "mirrors and the SCD2 histories, verify them, then advance the slot.",
)
def cdc_replication(
    context: dg.AssetExecutionContext, postgres: PostgresResource, lake: LakeResource
) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
    postgres.ensure_running()
    pipeline = build_pipeline(postgres, lake)
    result = pipeline.ensure_started()
    if result is None:
        end_tag = context.run.tags.get(LSN_END_TAG)
        result = pipeline.run_batch(
            upto_lsn=parse_lsn(end_tag) if end_tag else None,
            max_changes=postgres.max_batch_changes,
        )
    context.log.info(
        f"CDC batch {result.lsn_range}: {result.transactions} transactions, {result.changes} "
        f"changes{'; ' + '; '.join(result.schema_events) if result.schema_events else ''}"
    )
    yield from materializations(pipeline, result, postgres, lake)


def materializations(
    pipeline: CdcPipeline, result: BatchResult, postgres: PostgresResource, lake: LakeResource
) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
    """Per table: mirror and history materialisations, and the consistency check."""
    state = pipeline.state()
    view = source_view(pipeline.source, state)
    common: dict[str, str | int | bool] = {
        "cdc/lsn_range": result.lsn_range,
        "cdc/transactions": result.transactions,
        "cdc/changes": result.changes,
        "cdc/snapshot": result.snapshot,
    }
    for table in TABLES:
        sinks = pipeline.sinks(table)
        stats = result.tables.get(table)
        columns = list(state.tables[table].columns)
        iceberg = sinks.iceberg.read()
        delta = sinks.delta.read()
        comparisons = [
            compare(table, "iceberg", iceberg, view, columns),
            compare(table, "delta", delta, view, columns),
        ]
        iceberg_table = sinks.iceberg.table()
        if iceberg_table is None:  # the batch above wrote every mirror
            raise RuntimeError(f"the Iceberg mirror of {table} is missing after the batch")
        yield dg.MaterializeResult(
            asset_key=mirror_key(table),
            metadata={
                **common,
                "dagster/row_count": iceberg.height,
                URI_METADATA_KEY: _file_uri(iceberg_table.location()),
                REPLICAS_KEY: dg.MetadataValue.json([_file_uri(sinks.delta.uri)]),
                "cdc/keys_merged": stats.keys if stats else 0,
                "cdc/deletes": stats.deletes if stats else 0,
                "cdc/column_map": dg.MetadataValue.json(state.tables[table].column_map),
                "cdc/schema_events": dg.MetadataValue.json(
                    [e for e in result.schema_events if e.startswith(f"{table}:")]
                ),
            },
        )
        history_table = sinks.history.table()
        if history_table is None:  # the batch above wrote every history table
            raise RuntimeError(f"the Iceberg history of {table} is missing after the batch")
        yield dg.MaterializeResult(
            asset_key=history_key(table),
            metadata={
                **common,
                URI_METADATA_KEY: _file_uri(history_table.location()),
                "dagster/row_count": _records(history_table),
            },
        )
        yield _history_check(table, sinks, iceberg, columns, state.as_of_lsn)
        worst = min(c.consistency_rate for c in comparisons)
        yield dg.AssetCheckResult(
            asset_key=mirror_key(table),
            check_name=CONSISTENCY_CHECK,
            passed=worst == 1.0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{table}: consistency {worst:.4%} at LSN {format_lsn(state.as_of_lsn)}",
            metadata={
                "consistency_rate": worst,
                "applied_lsn": format_lsn(state.as_of_lsn),
                "lag_bytes": view.lag_bytes,
                "lag_seconds": round(view.lag_seconds, 3),
                "pending_transactions": view.pending_transactions,
                **{f"{c.sink}_rows": c.sink_rows for c in comparisons},
                "source_rows": comparisons[0].source_rows,
                "mismatch_sample": dg.MetadataValue.json({c.sink: c.sample() for c in comparisons}),
            },
        )


def _history_check(
    table: str, sinks: TableSinks, mirror: pl.DataFrame, columns: list[str], lsn: int
) -> dg.AssetCheckResult:
    replayed = read_history_as_of(sinks.history, lsn=lsn)
    left = row_hashes(mirror, columns).sort(KEY_COLUMN)
    right = row_hashes(replayed, columns).sort(KEY_COLUMN)
    joined = left.join(right, on=KEY_COLUMN, how="full", coalesce=True, suffix="_history")
    bad = joined.filter(
        pl.col("_hash").is_null()
        | pl.col("_hash_history").is_null()
        | (pl.col("_hash") != pl.col("_hash_history"))
    )
    return dg.AssetCheckResult(
        asset_key=history_key(table),
        check_name=HISTORY_CHECK,
        passed=bad.height == 0,
        description=f"{table}: {bad.height} keys differ between history at "
        f"{format_lsn(lsn)} and the mirror",
        metadata={
            "keys_compared": joined.height,
            "keys_different": bad.height,
            "sample": dg.MetadataValue.json(
                [k.replace(KEY_SEPARATOR, ",") for k in bad[KEY_COLUMN].head(5).to_list()]
            ),
        },
    )


def _records(table: Table | None) -> int:
    snapshot = table.current_snapshot() if table is not None else None
    return int(snapshot.summary.get("total-records", "0")) if snapshot and snapshot.summary else 0


def _file_uri(location: str) -> str:
    return location if "://" in location else f"file://{location}"
