"""The silver factory: contract-governed datasets built from their inputs, split into published
and quarantined rows, written atomically (per partition, or whole for a snapshot) as Parquet
files with warehouse views, and checked, in one step.

One factory, with options for the shapes a domain needs:

- **stages**: a step has one or more stages, each one contract-governed dataset (plus its
  quarantine). Later stages may read what earlier stages produced in the same chunk, by keyword:
  ``<dataset>`` is the stage's published frame and ``typed_<dataset>`` its typed frame. So order
  headers are derived from the very lines just typed, instead of typing millions of raw lines
  twice in two steps (``silver_assets``; ``silver_asset`` is the one-stage case).
- **partitioned ranges** (``partitions_def`` given): ``inputs`` are read for the chunk's
  partitions; a range run is processed in chunks under a row budget
  (``data_products.lib.chunks``, the first input sizes them); counts and timings are summed and
  the checks of every chunk merged, so the UI shows one materialisation and one evaluation per
  check for the run; each day's event carries that day's rows, the last day's the table's schema
  (``data_products.lib.range_metadata``).
- **whole-table references** (``references``): read whole, once per run, and passed to
  ``build`` by alias like inputs (a daily step that needs a dimension snapshot).
- **unpartitioned snapshots** (no ``partitions_def``): inputs are read whole and the dataset is
  replaced whole, in one chunk.

Contracts with an Iceberg server get an Iceberg replica, written by one background thread while
the step goes on. Group, owner, layer tag, table name, pool and backfill policy are platform
policy (``data_products.lib.policy``); the factory names the engine (kinds) and the tier.
"""

# No `from __future__ import annotations`: dagster inspects the asset functions' annotations.
import inspect
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from data_products.lib.chunks import merge_check_results, plan_chunks
from data_products.lib.contracts import Contract, evaluate_checks, load_contract_for
from data_products.lib.keys import DatasetName
from data_products.lib.lineage.naming import REPLICAS_KEY
from data_products.lib.partitions import describe_keys, run_partition_keys
from data_products.lib.policy import DERIVED_TAGS, server_kinds
from data_products.lib.quarantine import SplitResult, split
from data_products.lib.range_metadata import add_day_counts, range_metadata
from data_products.lib.settings import get_settings
from data_products.lib.tables import (
    PartitionedFiles,
    WriteResult,
    partition_row_counts,
    read_partitions,
    read_table,
)
from data_products.lib.tables.files import lake_files
from data_products.lib.timer import PhaseTimer
from data_products.lib.warehouse import LAKE_KEY, WAREHOUSE_KEY, Lake, Warehouse

Lineage = Mapping[str, Sequence[tuple[str, str]]]

SILVER_KINDS = {"polars"}
"""Typed by polars. The storage kinds come from the contract's servers (platform policy): the
Parquet files this factory writes, the warehouse view over them, an Iceberg replica."""

FILES_FORMAT = "parquet"
"""The factory writes every dataset as Parquet files: its contract must say so in ``servers``."""

SNAPSHOT = "snapshot"
"""The label of an unpartitioned run in metadata and check descriptions."""

Chunk = list[str] | None
"""A chunk's partition keys, or ``None``: the whole table (an unpartitioned snapshot)."""


@dataclass(frozen=True)
class Stage:
    """One dataset of a silver step.

    ``build`` returns the typed frame (see ``data_products.lib.quarantine`` for the convention);
    it is called with the keyword arguments it declares, taken from the step's inputs, its
    references and the frames of earlier stages. ``column_lineage`` maps an output column to its
    (alias, column) sources; columns not listed trace to a same-named column (or a contract
    alias) of the first dataset ``build`` reads. ``after`` lists datasets the contract's SQL
    rules query but ``build`` does not read, so the checks never run before the tables they
    reference.
    """

    contract: str
    build: Callable[..., pl.DataFrame]
    column_lineage: Lineage = field(default_factory=dict)
    after: Sequence[str] = ()


@dataclass
class _Compiled:
    stage: Stage
    contract: Contract
    parameters: tuple[str, ...]

    @property
    def name(self) -> DatasetName:
        return self.contract.dataset

    @property
    def quarantine(self) -> DatasetName:
        return self.contract.quarantine_dataset


def silver_asset(
    contract_key: str,
    *,
    inputs: Mapping[str, str],
    build: Callable[..., pl.DataFrame],
    partitions_def: dg.PartitionsDefinition | None = None,
    references: Mapping[str, str] | None = None,
    column_lineage: Lineage | None = None,
    after: Sequence[str] = (),
) -> dg.AssetsDefinition:
    """A single contract-governed dataset and its quarantine (a one-stage step)."""
    stage = Stage(contract_key, build, column_lineage or {}, after)
    return silver_assets(
        inputs=inputs, stages=[stage], partitions_def=partitions_def, references=references
    )


def silver_assets(
    *,
    inputs: Mapping[str, str],
    stages: Sequence[Stage],
    partitions_def: dg.PartitionsDefinition | None = None,
    references: Mapping[str, str] | None = None,
) -> dg.AssetsDefinition:
    """Several contract-governed datasets (and their quarantines) built in one step, in order.

    ``inputs`` are read by partition (whole when there is no ``partitions_def``); ``references``
    are read whole once per run. An alias may not name both.
    """
    input_keys = {alias: DatasetName.from_key(key) for alias, key in inputs.items()}
    reference_keys = {alias: DatasetName.from_key(key) for alias, key in (references or {}).items()}
    if not input_keys:
        raise ValueError("a silver step needs at least one input")
    clash = set(input_keys) & set(reference_keys)
    if clash:
        where = stages[0].contract if stages else "silver step"
        raise ValueError(f"{where}: aliases {sorted(clash)} are both input and reference")
    compiled = _compile(stages, input_keys, reference_keys)
    first = compiled[0].name
    used = {p for item in compiled for p in item.parameters}
    specs: list[dg.AssetSpec] = []
    check_specs: list[dg.AssetCheckSpec] = []
    known = {**input_keys, **reference_keys}
    for item in compiled:
        specs.extend(_specs(item, known))
        check_specs.extend(item.contract.check_specs())
        known[item.name.name] = item.name
    replicated = any(c.contract.publishes_to_iceberg for c in compiled)
    # The first input sizes the chunks even when no stage reads it directly.
    daily = {a: d for a, d in input_keys.items() if a in used or a == next(iter(input_keys))}
    whole = {a: d for a, d in reference_keys.items() if a in used}

    @dg.multi_asset(
        name="__".join([first.domain, first.layer, *(c.name.name for c in compiled)]),
        specs=specs,
        check_specs=check_specs,
        partitions_def=partitions_def,
        required_resource_keys={WAREHOUSE_KEY} | ({LAKE_KEY} if replicated else set()),
    )
    def _silver(context: dg.AssetExecutionContext) -> Iterator[Any]:
        warehouse: Warehouse = getattr(context.resources, WAREHOUSE_KEY)
        lake: Lake | None = getattr(context.resources, LAKE_KEY) if replicated else None
        keys = run_partition_keys(context) if partitions_def is not None else []
        store = lake_files()
        # Iceberg replicas are written by one background thread, in order, while the step goes on
        # (pyarrow and polars release the GIL); the step waits for them before it reports.
        replicas = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iceberg-replica")
        runs = {c.name.name: _StageRun(c, store, replicas, lake) for c in compiled}
        with replicas, warehouse.connect() as con:
            shared = {a: _read_whole(con, store, d) for a, d in whole.items()}
            chunks = _plan(con, store, next(iter(input_keys.values())), keys)
            for number, chunk in enumerate(chunks, start=1):
                if len(chunks) > 1:
                    context.log.info(f"{first}: chunk {number}/{len(chunks)} {_label(chunk)}")
                frames = {
                    alias: _read_chunk(con, store, dataset, chunk)
                    for alias, dataset in daily.items()
                }
                frames.update(shared)
                # Table-wide checks scan the table once, after the run's last chunk is written.
                table_keys = keys if number == len(chunks) else []
                for item in compiled:
                    runs[item.name.name].process(con, frames, chunk, table_keys)
                del frames
            for run in runs.values():
                run.wait_for_replicas()
        partitions = describe_keys(keys) if keys else SNAPSHOT
        for run in runs.values():
            context.log.info(f"{run.item.name} {partitions}: {run.summary()}")
            yield from run.results(context, keys, chunks=len(chunks))

    return _silver


class _StageRun:
    """What one stage accumulates over the chunks of a run."""

    def __init__(
        self,
        item: _Compiled,
        store: PartitionedFiles,
        replicas: ThreadPoolExecutor,
        lake: Lake | None,
    ) -> None:
        self.item = item
        self.store = store
        self.replicas = replicas
        self.lake = lake
        self.pending: list[Future[WriteResult]] = []
        # Wall seconds per phase, summed over chunks: slow phases are visible in the UI.
        self.timer = PhaseTimer()
        self.rows_in = self.published_rows = self.quarantined_rows = 0
        self.by_rule: Counter[str] = Counter()
        # Rows per partition key, for each day's own event (None: keys are not days).
        self.published_by_key: dict[str, int] | None = {}
        self.quarantined_by_key: dict[str, int] | None = {}
        self.checks: list[tuple[str, list[dg.AssetCheckResult]]] = []
        self.last: tuple[WriteResult, WriteResult] | None = None
        self.iceberg: WriteResult | None = None

    def process(
        self,
        con: duckdb.DuckDBPyConnection,
        frames: dict[str, pl.DataFrame],
        chunk: Chunk,
        table_keys: list[str],
    ) -> None:
        item = self.item
        with self.timer.phase("build_s"):
            typed = item.stage.build(**{p: frames[p] for p in item.parameters})
        with self.timer.phase("split_s"):
            result = split(typed, item.contract)
        with self.timer.phase("write_s"):
            published = self._write(con, item.name, result.published, chunk)
            rejected = self._write(con, item.quarantine, result.quarantined, chunk)
        with self.timer.phase("checks_s"):
            checks = evaluate_checks(
                item.contract,
                result,
                con=con,
                partition_keys=chunk or [],
                table_partition_keys=table_keys,
            )
        self.checks.append((_label(chunk), checks))
        if item.contract.publishes_to_iceberg:
            self.pending.append(self.replicas.submit(self._replicate, result.published, chunk))
        self._count(result, published, rejected)
        if chunk is not None:
            self.published_by_key = add_day_counts(self.published_by_key, result.published, chunk)
            self.quarantined_by_key = add_day_counts(
                self.quarantined_by_key, result.quarantined, chunk
            )
        # Later stages of the same chunk read these by keyword.
        frames[item.name.name] = result.published
        frames[f"typed_{item.name.name}"] = typed

    def _write(
        self,
        con: duckdb.DuckDBPyConnection,
        dataset: DatasetName,
        frame: pl.DataFrame,
        chunk: Chunk,
    ) -> WriteResult:
        if chunk is None:
            return self.store.replace_table(con, dataset, frame)
        return self.store.replace_partitions(con, dataset, frame, partition_values=_dates(chunk))

    def _count(self, result: SplitResult, published: WriteResult, rejected: WriteResult) -> None:
        self.rows_in += result.rows_in
        self.published_rows += published.rows_written
        self.quarantined_rows += rejected.rows_written
        self.by_rule.update(result.quarantined_by_rule)
        self.last = (published, rejected)

    def _replicate(self, published: pl.DataFrame, chunk: Chunk) -> WriteResult:
        assert self.lake is not None, "the lake resource is required when a contract replicates"
        with self.timer.phase("iceberg_s"):  # on the replica thread: overlapped, not on the path
            tables = self.lake.iceberg()
            if chunk is None:
                return tables.replace_table(self.item.name, published)
            return tables.replace_partitions(
                self.item.name, published, partition_values=_dates(chunk)
            )

    def wait_for_replicas(self) -> None:
        """Re-raises a replica write's error here, in the step, after all earlier ones ran."""
        for future in self.pending:
            self.iceberg = future.result()
        self.pending.clear()

    def summary(self) -> str:
        return (
            f"{self.rows_in} in, {self.published_rows} published, "
            f"{self.quarantined_rows} quarantined"
        )

    def results(
        self, context: dg.AssetExecutionContext, keys: list[str], *, chunks: int
    ) -> Iterator[Any]:
        """The run's results: with a range of ``keys``, each day's rows on its own event and
        the table-level entries on the last day's (``range_metadata``)."""
        assert self.last is not None, "a run has at least one chunk"
        partitions = describe_keys(keys) if keys else SNAPSHOT
        ranged = {"partition_range": partitions} if keys else {}
        published, rejected = self.last
        replicas: dict[str, Any] = {}
        if self.iceberg is not None:
            replicas = {
                "iceberg/table": f"{self.item.name.schema}.{self.item.name.name}",
                "iceberg/snapshot_id": str(self.iceberg.snapshot_id),
                REPLICAS_KEY: dg.MetadataValue.json([_file_uri(self.iceberg.location)]),
            }
        yield dg.MaterializeResult(
            asset_key=self.item.name.asset_key,
            metadata=self._scoped(
                context,
                keys,
                self.item.name.asset_key,
                self.published_by_key,
                {
                    **published.metadata(),
                    **replicas,
                    "dagster/row_count": dg.MetadataValue.int(self.published_rows),
                    **ranged,
                    "partitions": partitions,
                    "chunks": chunks,
                    "rows_in": self.rows_in,
                    "quarantined_rows": self.quarantined_rows,
                    "quarantined_by_rule": dg.MetadataValue.json(dict(self.by_rule.most_common())),
                    "timings": dg.MetadataValue.json(self.timer.metadata()),
                },
            ),
        )
        yield dg.MaterializeResult(
            asset_key=self.item.quarantine.asset_key,
            metadata=self._scoped(
                context,
                keys,
                self.item.quarantine.asset_key,
                self.quarantined_by_key,
                {
                    **rejected.metadata(),
                    "dagster/row_count": dg.MetadataValue.int(self.quarantined_rows),
                    **ranged,
                    "partitions": partitions,
                },
            ),
        )
        yield from merge_check_results(self.checks, partitions=partitions)

    @staticmethod
    def _scoped(
        context: dg.AssetExecutionContext,
        keys: list[str],
        asset_key: dg.AssetKey,
        by_key: dict[str, int] | None,
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        if not keys:  # a snapshot: one event, everything on it
            return metadata
        return range_metadata(context, keys, asset_key, by_key, metadata)


def _compile(
    stages: Sequence[Stage],
    inputs: Mapping[str, DatasetName],
    references: Mapping[str, DatasetName],
) -> list[_Compiled]:
    """Load each stage's contract and check that ``build`` asks only for available frames."""
    if not stages:
        raise ValueError("a silver step needs at least one stage")
    available = set(inputs) | set(references)
    compiled = []
    for stage in stages:
        contract = load_contract_for(stage.contract)
        parameters = tuple(inspect.signature(stage.build).parameters)
        unknown = [p for p in parameters if p not in available]
        if unknown:
            raise ValueError(
                f"{contract.dataset}: build {getattr(stage.build, '__name__', stage.build)} asks "
                f"for {unknown}, but only {sorted(available)} are available"
            )
        if FILES_FORMAT not in server_kinds(contract):
            raise ValueError(
                f"{contract.path}: servers: the silver factory writes Parquet files; declare "
                f"them (type: local, format: {FILES_FORMAT}, path: lake/files/...)"
            )
        compiled.append(_Compiled(stage, contract, parameters))
        available |= {contract.dataset.name, f"typed_{contract.dataset.name}"}
    return compiled


def _specs(item: _Compiled, known: Mapping[str, DatasetName]) -> list[dg.AssetSpec]:
    """The published dataset (with contract metadata) and its quarantine."""
    contract, name = item.contract, item.name
    deps = [known[p].asset_key for p in item.parameters if p in known] + [
        DatasetName.from_key(key).asset_key for key in item.stage.after
    ]
    deps = list(dict.fromkeys(deps))
    contract_tags = {k: v for k, v in contract.tags.items() if k not in DERIVED_TAGS}
    return [
        dg.AssetSpec(
            key=name.asset_key,
            deps=deps,
            description=contract.description,
            kinds=SILVER_KINDS,
            tags={"tier": "curated", **contract_tags},
            freshness_policy=contract.freshness_policy(),
            metadata={
                "dagster/column_schema": contract.column_schema(),
                "dagster/column_lineage": _column_lineage(item, known),
                "contract": dg.MetadataValue.path(str(contract.path)),
            },
        ),
        dg.AssetSpec(
            key=item.quarantine.asset_key,
            deps=deps,
            description=(
                f"Rows rejected from {name} with the rule, reason, file and line: "
                "nothing is dropped."
            ),
            kinds=SILVER_KINDS,
            tags={"tier": "quarantine"},
        ),
    ]


def _column_lineage(item: _Compiled, known: Mapping[str, DatasetName]) -> dg.TableColumnLineage:
    """Column lineage for the table; Python assets declare theirs (dbt infers its own)."""
    sources = [known[p] for p in item.parameters if p in known]
    if not sources:
        return dg.TableColumnLineage(deps_by_column={})
    first = sources[0]
    explicit = item.stage.column_lineage
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for column in item.contract.columns:
        declared = explicit.get(column.name)
        if declared is None:
            deps[column.name] = [
                dg.TableColumnDep(asset_key=first.asset_key, column_name=n)
                for n in (column.name, *column.aliases)
            ]
        else:
            deps[column.name] = [
                dg.TableColumnDep(asset_key=known[alias].asset_key, column_name=col)
                for alias, col in declared
            ]
    return dg.TableColumnLineage(deps_by_column=deps)


def _plan(
    con: duckdb.DuckDBPyConnection, store: PartitionedFiles, sizing: DatasetName, keys: list[str]
) -> list[Chunk]:
    """The run's chunks: partitions under the row budget, or the whole table once."""
    if not keys:
        return [None]
    if store.exists(sizing):
        sizes = store.partition_row_counts(sizing, _dates(keys))
    else:
        sizes = partition_row_counts(con, sizing, _dates(keys))
    return list(plan_chunks(keys, sizes, get_settings().chunk_rows))


def _read_chunk(
    con: duckdb.DuckDBPyConnection, store: PartitionedFiles, dataset: DatasetName, chunk: Chunk
) -> pl.DataFrame:
    """An input's partitions (or all of it) from the lake files, or from the warehouse for a
    dataset that an asset outside the factories wrote there."""
    if chunk is None:
        return _read_whole(con, store, dataset)
    if store.exists(dataset):
        return store.read_partitions(dataset, _dates(chunk))
    return read_partitions(con, dataset, _dates(chunk))


def _read_whole(
    con: duckdb.DuckDBPyConnection, store: PartitionedFiles, dataset: DatasetName
) -> pl.DataFrame:
    if store.exists(dataset):
        return store.read_table(dataset)
    return read_table(con, dataset)


def _label(chunk: Chunk) -> str:
    return SNAPSHOT if chunk is None else describe_keys(chunk)


def _dates(keys: Sequence[str]) -> list[date]:
    return [date.fromisoformat(key) for key in keys]


def _file_uri(location: str | None) -> str:
    """Iceberg reports a plain path for local warehouses; lineage wants a URI."""
    if not location:
        raise ValueError("the Iceberg writer reported no table location")
    return location if "://" in location else f"file://{location}"
