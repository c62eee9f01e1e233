"""Asset factories for data products: a domain declares *what* (contract, inputs, a pure build
function); these factories do the *how* once for every domain: read the run's partitions, split
published from quarantined rows, write atomically, evaluate the contract's checks and report.

Every factory here produces assets that follow the key grammar, carry owner/kinds/tags from the
domain descriptor and the contract, and use ``BackfillPolicy.single_run()`` so a partition range
runs as one run.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from data_products.lib.chunks import merge_check_results, plan_chunks
from data_products.lib.contracts import Contract, evaluate_checks, load_contract_for
from data_products.lib.domains import domain as domain_descriptor
from data_products.lib.keys import DatasetName
from data_products.lib.landing import drop_files, read_landing
from data_products.lib.lineage.naming import REPLICAS_KEY
from data_products.lib.partitions import SINGLE_RUN, describe_keys, run_partition_keys
from data_products.lib.quarantine import SplitResult, split
from data_products.lib.settings import get_settings
from data_products.lib.tables import (
    WriteResult,
    partition_row_counts,
    read_partitions,
    replace_partitions,
)
from resources.lake import LakeResource
from resources.warehouse import WarehouseResource

WAREHOUSE_POOL = "warehouse"
"""DuckDB has a single writer: every asset that writes the warehouse shares this pool."""

QUARANTINE_ROLE_TAG = "data_products/role"


def _owners(domain: str) -> list[str]:
    return [domain_descriptor(domain).owner]


def _partition_values(keys: Sequence[str]) -> list[date]:
    return [date.fromisoformat(key) for key in keys]


def bronze_landing_asset(
    domain: str,
    dataset: str,
    *,
    partitions_def: dg.PartitionsDefinition,
    description: str,
) -> dg.AssetsDefinition:
    """``<domain>/bronze/<dataset>``: every drop file of the run's days, as delivered.

    Re-ingesting a day replaces that day (idempotent); a day with no drop is an error that names
    the folder, because an empty bronze partition would silently publish an empty silver one.
    """
    name = DatasetName(domain, "bronze", dataset)

    @dg.asset(
        key=name.asset_key,
        group_name=domain,
        owners=_owners(domain),
        description=description,
        kinds={"polars", "duckdb", "csv"},
        tags={"layer": "bronze", "tier": "raw"},
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
        metadata={"dagster/table_name": f"warehouse.{name.table}"},
    )
    def _bronze(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        keys = run_partition_keys(context)
        landing = get_settings().landing
        missing = [k for k in keys if not drop_files(landing, domain, dataset, k)]
        if missing:
            folders = ", ".join(str(landing / domain / k) for k in missing[:5])
            raise FileNotFoundError(
                f"{name}: no {dataset}*.csv drop for partition(s) "
                f"{describe_keys(missing)} (looked in {folders})"
            )
        files: dict[str, int] = {}
        rows = 0
        with warehouse.connect() as con:
            # One day at a time: a day is the unit of atomic replacement, and a range run's
            # memory stays that of its largest day.
            for key in keys:
                read = read_landing(landing, domain, dataset, [key])
                for path, count in read.files.items():
                    context.log.info(f"{name}: {path}: {count} rows")
                files.update(read.files)
                written = replace_partitions(
                    con, name, read.frame, partition_values=_partition_values([key])
                )
                rows += written.rows_written
        return dg.MaterializeResult(
            metadata={
                **written.metadata(),
                "dagster/row_count": dg.MetadataValue.int(rows),
                "partition_range": describe_keys(keys),
                "partitions": describe_keys(keys),
                "files": dg.MetadataValue.json(files),
            }
        )

    return _bronze


def silver_contract_asset(
    contract_key: str,
    *,
    inputs: Mapping[str, str],
    build: Callable[..., pl.DataFrame],
    partitions_def: dg.PartitionsDefinition,
    column_lineage: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    after: Sequence[str] = (),
) -> dg.AssetsDefinition:
    """A contract-governed dataset and its quarantine, as one multi-asset.

    ``inputs`` maps the keyword names of ``build`` to upstream asset keys; the factory reads each
    input for the run's partitions and calls ``build(**frames)`` to get the typed frame (see
    ``data_products.lib.quarantine`` for the typed-frame convention). ``column_lineage`` maps an
    output column to its (input name, input column) sources, for the OpenLineage facet; columns not
    listed are traced to a same-named column of the first input. ``after`` lists datasets that
    the contract's SQL rules query (e.g. referential integrity) but ``build`` does not read: they
    become dependencies so the checks never run before the tables they reference.
    """
    contract = load_contract_for(contract_key)
    name = contract.dataset
    quarantine = DatasetName(name.domain, name.layer, f"{name.name}_quarantine")
    input_keys = {alias: DatasetName.from_key(key) for alias, key in inputs.items()}
    deps = [k.asset_key for k in input_keys.values()] + [
        DatasetName.from_key(key).asset_key for key in after
    ]
    tags = {"layer": name.layer, "tier": "curated", **contract.tags}
    freshness = contract.freshness_policy()
    lineage = _column_lineage(contract, input_keys, column_lineage or {})

    specs = [
        dg.AssetSpec(
            key=name.asset_key,
            deps=deps,
            group_name=name.domain,
            owners=[contract.owner],
            description=contract.description,
            kinds={"polars", "duckdb"} | ({"iceberg"} if contract.publishes_to_iceberg else set()),
            tags=tags,
            freshness_policy=freshness,
            metadata={
                "dagster/table_name": f"warehouse.{name.table}",
                "dagster/column_schema": contract.column_schema(),
                "dagster/column_lineage": lineage,
                "contract": dg.MetadataValue.path(str(contract.path)),
            },
        ),
        dg.AssetSpec(
            key=quarantine.asset_key,
            deps=deps,
            group_name=name.domain,
            owners=[contract.owner],
            description=(
                f"Rows rejected from {name} with the rule, reason, file and line: "
                "nothing is dropped."
            ),
            kinds={"polars", "duckdb"},
            tags={"layer": name.layer, "tier": "quarantine", QUARANTINE_ROLE_TAG: "quarantine"},
            metadata={"dagster/table_name": f"warehouse.{quarantine.table}"},
        ),
    ]

    @dg.multi_asset(
        name=f"{name.domain}__{name.layer}__{name.name}",
        specs=specs,
        check_specs=contract.check_specs(),
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
    )
    def _silver(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource
    ):
        keys = run_partition_keys(context)
        values = _partition_values(keys)
        settings = get_settings()
        timings: dict[str, float] = {}
        totals = _Totals()
        chunk_checks: list[tuple[str, list[dg.AssetCheckResult]]] = []
        replicas: list[str] = []
        snapshot_id: str | None = None
        with warehouse.connect() as con:
            first_input = next(iter(input_keys.values()))
            sizes = partition_row_counts(con, first_input, values)
            chunks = plan_chunks(keys, sizes, settings.chunk_rows)
            for number, chunk in enumerate(chunks, start=1):
                chunk_values = _partition_values(chunk)
                if len(chunks) > 1:
                    context.log.info(f"{name}: chunk {number}/{len(chunks)} {describe_keys(chunk)}")
                with _timed(timings, "read_s"):
                    frames = {
                        alias: read_partitions(con, dataset, chunk_values)
                        for alias, dataset in input_keys.items()
                    }
                with _timed(timings, "build_s"):
                    typed = build(**frames)
                    del frames
                with _timed(timings, "split_s"):
                    result = split(typed, contract)
                    del typed
                with _timed(timings, "write_s"):
                    published = replace_partitions(
                        con, name, result.published, partition_values=chunk_values
                    )
                    rejected = replace_partitions(
                        con, quarantine, result.quarantined, partition_values=chunk_values
                    )
                with _timed(timings, "checks_s"):
                    chunk_checks.append(
                        (
                            describe_keys(chunk),
                            evaluate_checks(contract, result, con=con, partition_keys=chunk),
                        )
                    )
                if contract.publishes_to_iceberg:
                    with _timed(timings, "iceberg_s"):
                        iceberg = lake.iceberg().replace_partitions(
                            name, result.published, partition_values=chunk_values
                        )
                    replicas = [_file_uri(iceberg.location)]
                    snapshot_id = str(iceberg.snapshot_id)
                totals.add(result, published, rejected)
                del result
        iceberg_meta: dict[str, Any] = {}
        if replicas:
            iceberg_meta = {
                "iceberg/table": f"{name.schema}.{name.name}",
                "iceberg/snapshot_id": snapshot_id,
                REPLICAS_KEY: dg.MetadataValue.json(replicas),
            }
        context.log.info(
            f"{name} {describe_keys(keys)}: {totals.rows_in} in, "
            f"{totals.published} published, {totals.quarantined} quarantined"
        )
        partitions = describe_keys(keys)
        yield dg.MaterializeResult(
            asset_key=name.asset_key,
            metadata={
                **published.metadata(),
                "dagster/row_count": dg.MetadataValue.int(totals.published),
                "partition_range": partitions,
                **iceberg_meta,
                "partitions": partitions,
                "chunks": len(chunks),
                "rows_in": totals.rows_in,
                "quarantined_rows": totals.quarantined,
                "quarantined_by_rule": dg.MetadataValue.json(totals.by_rule()),
                "timings": dg.MetadataValue.json({k: round(v, 3) for k, v in timings.items()}),
            },
        )
        yield dg.MaterializeResult(
            asset_key=quarantine.asset_key,
            metadata={
                **rejected.metadata(),
                "dagster/row_count": dg.MetadataValue.int(totals.quarantined),
                "partition_range": partitions,
                "partitions": partitions,
            },
        )
        yield from merge_check_results(chunk_checks, partitions=partitions)

    return _silver


def _file_uri(location: str | None) -> str:
    """Iceberg reports a plain path for local warehouses; lineage wants a URI."""
    if not location:
        raise ValueError("the Iceberg writer reported no table location")
    return location if "://" in location else f"file://{location}"


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Wall seconds of one phase (summed over chunks), reported as metadata so slow phases are
    visible in the UI."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


@dataclass
class _Totals:
    """Counts of a range run, summed over its chunks."""

    rows_in: int = 0
    published: int = 0
    quarantined: int = 0
    quarantined_by: Counter[str] = field(default_factory=Counter)

    def add(self, result: SplitResult, published: WriteResult, rejected: WriteResult) -> None:
        self.rows_in += result.rows_in
        self.published += published.rows_written
        self.quarantined += rejected.rows_written
        self.quarantined_by.update(result.quarantined_by_rule)

    def by_rule(self) -> dict[str, int]:
        return dict(self.quarantined_by.most_common())


def _column_lineage(
    contract: Contract,
    inputs: Mapping[str, DatasetName],
    explicit: Mapping[str, Sequence[tuple[str, str]]],
) -> dg.TableColumnLineage:
    """Column lineage for the silver table; Python assets declare theirs (dbt infers its own)."""
    if not inputs:
        return dg.TableColumnLineage(deps_by_column={})
    first = next(iter(inputs.values()))
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for column in contract.columns:
        sources = explicit.get(column.name)
        if sources is None:
            names = [column.name, *column.aliases]
            deps[column.name] = [
                dg.TableColumnDep(asset_key=first.asset_key, column_name=n) for n in names
            ]
        else:
            deps[column.name] = [
                dg.TableColumnDep(asset_key=inputs[alias].asset_key, column_name=col)
                for alias, col in sources
            ]
    return dg.TableColumnLineage(deps_by_column=deps)
