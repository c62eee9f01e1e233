"""Reference data: unpartitioned snapshots (airports, product masters, calendars) and the
partitioned silver steps that need them whole.

Why this module: the daily factories (``products.bronze_landing_asset``,
``silver.silver_contract_assets``) read every input *by partition*, so a dimension delivered
once as a snapshot can neither be landed by them nor joined into a daily step (its rows do not
carry the day being processed). Here:

- ``reference_bronze_asset``: the newest snapshot under ``landing/<domain>/reference/<date>/``,
  as delivered, replacing the whole table (``partition_date`` = the snapshot's date);
- ``reference_silver_asset``: a contract-governed snapshot, split into published and quarantined
  rows, whole-table replace, the contract's checks;
- ``silver_with_references``: a daily contract-governed step whose ``build`` also receives whole
  reference tables (read once per run), otherwise the same as the platform's silver step: row
  budgeted chunks, per-partition atomic writes, checks merged over chunks.

All of them carry ``BackfillPolicy.single_run()`` (Dagster requires it of every asset selected
for a CLI ``--partition-range`` run, unpartitioned ones included) and the warehouse pool.
"""

# No `from __future__ import annotations`: dagster inspects the asset functions' annotations.
import inspect
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from data_products.lib.chunks import merge_check_results, plan_chunks
from data_products.lib.contracts import Contract, evaluate_checks, load_contract_for
from data_products.lib.domains import domain as domain_descriptor
from data_products.lib.keys import DatasetName, validate_identifier, validate_partition_key
from data_products.lib.landing import read_csv_as_delivered
from data_products.lib.partitions import SINGLE_RUN, describe_keys, run_partition_keys
from data_products.lib.products import QUARANTINE_ROLE_TAG, WAREHOUSE_POOL
from data_products.lib.quarantine import split
from data_products.lib.range_metadata import add_day_counts, range_metadata
from data_products.lib.settings import get_settings
from data_products.lib.tables import (
    WriteResult,
    partition_row_counts,
    read_partitions,
    read_table,
    replace_partitions,
    replace_table,
)
from resources.warehouse import WarehouseResource

REFERENCE_FOLDER = "reference"
"""``landing/<domain>/reference/<YYYY-MM-DD>/<dataset>.csv``: one folder per snapshot date."""

Lineage = Mapping[str, Sequence[tuple[str, str]]]
_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def latest_reference_drop(landing: Path, domain: str, dataset: str) -> tuple[str, Path]:
    """(snapshot date, file) of the newest delivered snapshot of ``dataset``."""
    validate_identifier(domain, what="domain")
    validate_identifier(dataset, what="dataset")
    root = landing / domain / REFERENCE_FOLDER
    dated = sorted(
        (p.name, p / f"{dataset}.csv")
        for p in (root.iterdir() if root.is_dir() else [])
        if _DATE_FOLDER.fullmatch(p.name) and (p / f"{dataset}.csv").is_file()
    )
    if not dated:
        raise FileNotFoundError(
            f"{domain}/bronze/{dataset}: no snapshot {root}/<YYYY-MM-DD>/{dataset}.csv delivered"
        )
    key, path = dated[-1]
    return validate_partition_key(key), path


def reference_bronze_asset(domain: str, dataset: str, *, description: str) -> dg.AssetsDefinition:
    """``<domain>/bronze/<dataset>``: the newest snapshot as delivered (whole-table replace)."""
    name = DatasetName(domain, "bronze", dataset)

    @dg.asset(
        key=name.asset_key,
        group_name=domain,
        owners=[domain_descriptor(domain).owner],
        description=description,
        kinds={"polars", "duckdb", "csv"},
        tags={"layer": "bronze", "tier": "raw"},
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
        metadata={"dagster/table_name": f"warehouse.{name.table}"},
    )
    def _bronze(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        landing = get_settings().landing
        snapshot, path = latest_reference_drop(landing, domain, dataset)
        frame = read_csv_as_delivered(path, landing, snapshot)
        context.log.info(f"{name}: {path}: {frame.height} rows (snapshot {snapshot})")
        with warehouse.connect() as con:
            written = replace_table(con, name, frame)
        return dg.MaterializeResult(
            metadata={
                **written.metadata(),
                "snapshot": snapshot,
                "files": dg.MetadataValue.json(
                    {path.relative_to(landing).as_posix(): frame.height}
                ),
            }
        )

    return _bronze


# --------------------------------------------------------------------------------------------
# Silver


@dataclass
class _Accumulated:
    """What one contract-governed dataset accumulates over the chunks of a run."""

    contract: Contract
    rows_in: int = 0
    published_rows: int = 0
    quarantined_rows: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    checks: list[tuple[str, list[dg.AssetCheckResult]]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    last: tuple[WriteResult, WriteResult] | None = None
    # Rows per daily key, for each day's own event (None: a snapshot, or keys are not days).
    published_by_key: dict[str, int] | None = field(default_factory=dict)
    quarantined_by_key: dict[str, int] | None = field(default_factory=dict)

    def timed(self, phase: str, started: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started

    def process(
        self,
        con: Any,
        build: Callable[..., pl.DataFrame],
        frames: Mapping[str, pl.DataFrame],
        keys: Sequence[str] | None,
    ) -> None:
        """Build, split, write and check one chunk (``keys``) or the whole table (``None``)."""
        contract = self.contract
        started = time.perf_counter()
        typed = build(**frames)
        self.timed("build_s", started)
        started = time.perf_counter()
        result = split(typed, contract)
        self.timed("split_s", started)
        started = time.perf_counter()
        if keys is None:
            published = replace_table(con, contract.dataset, result.published)
            rejected = replace_table(con, contract.quarantine_dataset, result.quarantined)
        else:
            values = [date.fromisoformat(k) for k in keys]
            published = replace_partitions(
                con, contract.dataset, result.published, partition_values=values
            )
            rejected = replace_partitions(
                con, contract.quarantine_dataset, result.quarantined, partition_values=values
            )
        self.timed("write_s", started)
        started = time.perf_counter()
        checks = evaluate_checks(contract, result, con=con, partition_keys=list(keys or []))
        self.timed("checks_s", started)
        self.checks.append((describe_keys(list(keys)) if keys else "snapshot", checks))
        self.rows_in += result.rows_in
        self.published_rows += published.rows_written
        self.quarantined_rows += rejected.rows_written
        self.by_rule.update(result.quarantined_by_rule)
        self.last = (published, rejected)
        if keys is not None:
            self.published_by_key = add_day_counts(self.published_by_key, result.published, keys)
            self.quarantined_by_key = add_day_counts(
                self.quarantined_by_key, result.quarantined, keys
            )

    def results(
        self,
        partitions: str,
        *,
        chunks: int,
        context: dg.AssetExecutionContext | None = None,
        keys: Sequence[str] = (),
    ) -> Iterator[Any]:
        """The run's results; with ``context`` and a range of ``keys``, each day's rows on its
        own event and the table-level entries on the last day's (``range_metadata``)."""
        assert self.last is not None, "a run processes at least one chunk"
        published, rejected = self.last

        def scoped(
            key: dg.AssetKey, by_key: dict[str, int] | None, metadata: dict[str, Any]
        ) -> dict[str, Any]:
            if context is None:
                return metadata
            return range_metadata(context, keys, key, by_key, metadata)

        yield dg.MaterializeResult(
            asset_key=self.contract.key,
            metadata=scoped(
                self.contract.key,
                self.published_by_key,
                {
                    **published.metadata(),
                    "dagster/row_count": dg.MetadataValue.int(self.published_rows),
                    "partitions": partitions,
                    "chunks": chunks,
                    "rows_in": self.rows_in,
                    "quarantined_rows": self.quarantined_rows,
                    "quarantined_by_rule": dg.MetadataValue.json(dict(self.by_rule.most_common())),
                    "timings": dg.MetadataValue.json(
                        {k: round(v, 3) for k, v in self.timings.items()}
                    ),
                },
            ),
        )
        quarantine = self.contract.quarantine_dataset.asset_key
        yield dg.MaterializeResult(
            asset_key=quarantine,
            metadata=scoped(
                quarantine,
                self.quarantined_by_key,
                {
                    **rejected.metadata(),
                    "dagster/row_count": dg.MetadataValue.int(self.quarantined_rows),
                    "partitions": partitions,
                },
            ),
        )
        yield from merge_check_results(self.checks, partitions=partitions)


def _parameters(contract: Contract, build: Callable[..., Any], available: set[str]) -> list[str]:
    parameters = list(inspect.signature(build).parameters)
    unknown = [p for p in parameters if p not in available]
    if unknown:
        raise ValueError(
            f"{contract.dataset}: build {getattr(build, '__name__', build)} asks for {unknown}, "
            f"but only {sorted(available)} are available"
        )
    return parameters


def _specs(contract: Contract, deps: Sequence[DatasetName], lineage: Lineage) -> list[dg.AssetSpec]:
    """The published dataset (with contract metadata) and its quarantine."""
    name, quarantine = contract.dataset, contract.quarantine_dataset
    keys = [d.asset_key for d in deps]
    by_alias = {d.name: d for d in deps}
    column_deps: dict[str, list[dg.TableColumnDep]] = {}
    for column in contract.columns:
        declared = lineage.get(column.name)
        if declared is not None:
            column_deps[column.name] = [
                dg.TableColumnDep(asset_key=by_alias[alias].asset_key, column_name=source)
                for alias, source in declared
            ]
        elif deps:
            column_deps[column.name] = [
                dg.TableColumnDep(asset_key=deps[0].asset_key, column_name=column.name)
            ]
    return [
        dg.AssetSpec(
            key=name.asset_key,
            deps=keys,
            group_name=name.domain,
            owners=[contract.owner],
            description=contract.description,
            kinds={"polars", "duckdb"},
            tags={"layer": name.layer, "tier": "curated", **contract.tags},
            freshness_policy=contract.freshness_policy(),
            metadata={
                "dagster/table_name": f"warehouse.{name.table}",
                "dagster/column_schema": contract.column_schema(),
                "dagster/column_lineage": dg.TableColumnLineage(deps_by_column=column_deps),
                "contract": dg.MetadataValue.path(str(contract.path)),
            },
        ),
        dg.AssetSpec(
            key=quarantine.asset_key,
            deps=keys,
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


def _aliases(keys: Mapping[str, str]) -> dict[str, DatasetName]:
    return {alias: DatasetName.from_key(key) for alias, key in keys.items()}


def reference_silver_asset(
    contract_key: str,
    *,
    inputs: Mapping[str, str],
    build: Callable[..., pl.DataFrame],
    column_lineage: Lineage | None = None,
) -> dg.AssetsDefinition:
    """An unpartitioned contract-governed dataset rebuilt whole from whole input tables."""
    contract = load_contract_for(contract_key)
    datasets = _aliases(inputs)
    parameters = _parameters(contract, build, set(datasets))
    lineage = {
        column: [(datasets[alias].name, source) for alias, source in pairs]
        for column, pairs in (column_lineage or {}).items()
    }

    @dg.multi_asset(
        name="__".join([contract.dataset.domain, contract.dataset.layer, contract.dataset.name]),
        specs=_specs(contract, [datasets[p] for p in parameters], lineage),
        check_specs=contract.check_specs(),
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
    )
    def _silver(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        step = _Accumulated(contract)
        with warehouse.connect() as con:
            frames = {p: read_table(con, datasets[p]) for p in parameters}
            step.process(con, build, frames, None)
        context.log.info(
            f"{contract.dataset}: {step.rows_in} in, {step.published_rows} published, "
            f"{step.quarantined_rows} quarantined"
        )
        yield from step.results("snapshot", chunks=1)

    return _silver


def silver_with_references(
    contract_key: str,
    *,
    inputs: Mapping[str, str],
    references: Mapping[str, str],
    build: Callable[..., pl.DataFrame],
    partitions_def: dg.PartitionsDefinition,
    column_lineage: Lineage | None = None,
) -> dg.AssetsDefinition:
    """A daily contract-governed dataset whose ``build`` also gets whole reference tables.

    ``inputs`` are read for the chunk's partitions (the first one sizes the chunks);
    ``references`` are read whole, once per run, and passed by alias like inputs.
    """
    contract = load_contract_for(contract_key)
    daily = _aliases(inputs)
    whole = _aliases(references)
    clash = set(daily) & set(whole)
    if clash:
        raise ValueError(
            f"{contract.dataset}: aliases {sorted(clash)} are both input and reference"
        )
    parameters = _parameters(contract, build, set(daily) | set(whole))
    every = {**daily, **whole}
    lineage = {
        column: [(every[alias].name, source) for alias, source in pairs]
        for column, pairs in (column_lineage or {}).items()
    }
    first = next(iter(daily.values()))

    @dg.multi_asset(
        name="__".join([contract.dataset.domain, contract.dataset.layer, contract.dataset.name]),
        specs=_specs(contract, [every[p] for p in parameters], lineage),
        check_specs=contract.check_specs(),
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
    )
    def _silver(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        keys = run_partition_keys(context)
        step = _Accumulated(contract)
        with warehouse.connect() as con:
            shared = {a: read_table(con, d) for a, d in whole.items() if a in parameters}
            sizes = partition_row_counts(con, first, [date.fromisoformat(k) for k in keys])
            chunks = plan_chunks(keys, sizes, get_settings().chunk_rows)
            for number, chunk in enumerate(chunks, start=1):
                if len(chunks) > 1:
                    context.log.info(
                        f"{contract.dataset}: chunk {number}/{len(chunks)} {describe_keys(chunk)}"
                    )
                values = [date.fromisoformat(k) for k in chunk]
                frames = {
                    a: read_partitions(con, d, values) for a, d in daily.items() if a in parameters
                }
                step.process(con, build, {**frames, **shared}, chunk)
                del frames
        partitions = describe_keys(keys)
        context.log.info(
            f"{contract.dataset} {partitions}: {step.rows_in} in, {step.published_rows} "
            f"published, {step.quarantined_rows} quarantined"
        )
        yield from step.results(partitions, chunks=len(chunks), context=context, keys=keys)

    return _silver
