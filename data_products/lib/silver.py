"""The silver factory: contract-governed datasets built from their inputs, split into published
and quarantined rows, written atomically per partition and checked, in one step.

A step has one or more *stages*. Each stage is one contract-governed dataset (plus its
quarantine). Later stages may read what earlier stages produced in the same chunk, by keyword:
``<dataset>`` is the stage's published frame and ``typed_<dataset>`` its typed frame. So order
headers are derived from the very lines just typed, instead of typing millions of raw lines twice
in two steps.

A range run is processed in chunks under a row budget (``data_products.lib.chunks``); counts and
timings are summed and the checks of every chunk merged, so the UI shows one materialisation and
one evaluation per check for the run.
"""

import inspect
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from data_products.lib.chunks import merge_check_results, plan_chunks
from data_products.lib.contracts import Contract, evaluate_checks, load_contract_for
from data_products.lib.keys import DatasetName
from data_products.lib.lineage.naming import REPLICAS_KEY
from data_products.lib.partitions import SINGLE_RUN, describe_keys, run_partition_keys
from data_products.lib.products import QUARANTINE_ROLE_TAG, WAREHOUSE_POOL
from data_products.lib.quarantine import SplitResult, split
from data_products.lib.range_metadata import add_day_counts, range_metadata
from data_products.lib.settings import get_settings
from data_products.lib.tables import (
    PartitionedFiles,
    WriteResult,
    partition_row_counts,
    read_partitions,
)
from data_products.lib.tables.files import lake_files
from resources.lake import LakeResource
from resources.warehouse import WarehouseResource

Lineage = Mapping[str, Sequence[tuple[str, str]]]


@dataclass(frozen=True)
class Stage:
    """One dataset of a silver step.

    ``build`` returns the typed frame (see ``data_products.lib.quarantine`` for the convention);
    it is called with the keyword arguments it declares, taken from the step's inputs and the
    frames of earlier stages. ``column_lineage`` maps an output column to its (input, column)
    sources; columns not listed trace to a same-named column of the first input. ``after`` lists
    datasets the contract's SQL rules query but ``build`` does not read, so the checks never run
    before the tables they reference.
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
        name = self.name
        return DatasetName(name.domain, name.layer, f"{name.name}_quarantine")


def silver_contract_asset(
    contract_key: str,
    *,
    inputs: Mapping[str, str],
    build: Callable[..., pl.DataFrame],
    partitions_def: dg.PartitionsDefinition,
    column_lineage: Lineage | None = None,
    after: Sequence[str] = (),
) -> dg.AssetsDefinition:
    """A single contract-governed dataset and its quarantine (a one-stage step)."""
    stage = Stage(contract_key, build, column_lineage or {}, after)
    return silver_contract_assets(inputs=inputs, stages=[stage], partitions_def=partitions_def)


def silver_contract_assets(
    *,
    inputs: Mapping[str, str],
    stages: Sequence[Stage],
    partitions_def: dg.PartitionsDefinition,
) -> dg.AssetsDefinition:
    """Several contract-governed datasets (and their quarantines) built in one step, in order."""
    input_keys = {alias: DatasetName.from_key(key) for alias, key in inputs.items()}
    compiled = _compile(stages, input_keys)
    first = compiled[0].name
    specs: list[dg.AssetSpec] = []
    check_specs: list[dg.AssetCheckSpec] = []
    known = dict(input_keys)
    for item in compiled:
        specs.extend(_specs(item, known))
        check_specs.extend(item.contract.check_specs())
        known[item.name.name] = item.name

    @dg.multi_asset(
        name="__".join([first.domain, first.layer, *(c.name.name for c in compiled)]),
        specs=specs,
        check_specs=check_specs,
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
    )
    def _silver(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource
    ):
        keys = run_partition_keys(context)
        store = lake_files()
        # Iceberg replicas are written by one background thread, in order, while the step goes on
        # (pyarrow and polars release the GIL); the step waits for them before it reports.
        replicas = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iceberg-replica")
        runs = {c.name.name: _StageRun(c, store, replicas) for c in compiled}
        with replicas, warehouse.connect() as con:
            sizes = _input_row_counts(con, store, next(iter(input_keys.values())), _dates(keys))
            chunks = plan_chunks(keys, sizes, get_settings().chunk_rows)
            for number, chunk in enumerate(chunks, start=1):
                if len(chunks) > 1:
                    context.log.info(
                        f"{first}: chunk {number}/{len(chunks)} {describe_keys(chunk)}"
                    )
                frames = {
                    alias: _read_input(con, store, dataset, _dates(chunk))
                    for alias, dataset in input_keys.items()
                }
                # Table-wide checks scan the table once, after the run's last chunk is written.
                table_keys = keys if number == len(chunks) else []
                for item in compiled:
                    runs[item.name.name].process(con, lake, frames, chunk, table_keys)
                del frames
            for run in runs.values():
                run.wait_for_replicas()
        partitions = describe_keys(keys)
        for run in runs.values():
            context.log.info(f"{run.item.name} {partitions}: {run.summary()}")
            yield from run.results(context, keys, chunks=len(chunks))

    return _silver


class _StageRun:
    """What one stage accumulates over the chunks of a run."""

    def __init__(
        self, item: _Compiled, store: PartitionedFiles, replicas: ThreadPoolExecutor
    ) -> None:
        self.item = item
        self.store = store
        self.replicas = replicas
        self.pending: list[Future[WriteResult]] = []
        self.timings: dict[str, float] = {}
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
        con: Any,
        lake: LakeResource,
        frames: dict[str, pl.DataFrame],
        chunk: list[str],
        table_keys: list[str],
    ) -> None:
        item, values = self.item, _dates(chunk)
        with self._timed("build_s"):
            typed = item.stage.build(**{p: frames[p] for p in item.parameters})
        with self._timed("split_s"):
            result = split(typed, item.contract)
        with self._timed("write_s"):
            published = self.store.replace_partitions(
                con, item.name, result.published, partition_values=values
            )
            rejected = self.store.replace_partitions(
                con, item.quarantine, result.quarantined, partition_values=values
            )
        with self._timed("checks_s"):
            checks = evaluate_checks(
                item.contract,
                result,
                con=con,
                partition_keys=chunk,
                table_partition_keys=table_keys,
            )
        self.checks.append((describe_keys(chunk), checks))
        if item.contract.publishes_to_iceberg:
            self.pending.append(
                self.replicas.submit(self._replicate, lake, result.published, values)
            )
        self._count(result, published, rejected)
        self.published_by_key = add_day_counts(self.published_by_key, result.published, chunk)
        self.quarantined_by_key = add_day_counts(self.quarantined_by_key, result.quarantined, chunk)
        # Later stages of the same chunk read these by keyword.
        frames[item.name.name] = result.published
        frames[f"typed_{item.name.name}"] = typed

    def _count(self, result: SplitResult, published: WriteResult, rejected: WriteResult) -> None:
        self.rows_in += result.rows_in
        self.published_rows += published.rows_written
        self.quarantined_rows += rejected.rows_written
        self.by_rule.update(result.quarantined_by_rule)
        self.last = (published, rejected)

    def _replicate(
        self, lake: LakeResource, published: pl.DataFrame, values: list[date]
    ) -> WriteResult:
        with self._timed("iceberg_s"):  # on the replica thread: overlapped, not on the path
            return lake.iceberg().replace_partitions(
                self.item.name, published, partition_values=values
            )

    def wait_for_replicas(self) -> None:
        """Re-raises a replica write's error here, in the step, after all earlier ones ran."""
        for future in self.pending:
            self.iceberg = future.result()
        self.pending.clear()

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        """Wall seconds per phase, summed over chunks: slow phases are visible in the UI."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started

    def summary(self) -> str:
        return (
            f"{self.rows_in} in, {self.published_rows} published, "
            f"{self.quarantined_rows} quarantined"
        )

    def results(
        self, context: dg.AssetExecutionContext, keys: list[str], *, chunks: int
    ) -> Iterator[Any]:
        assert self.last is not None, "a run has at least one chunk"
        partitions = describe_keys(keys)
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
            metadata=range_metadata(
                context,
                keys,
                self.item.name.asset_key,
                self.published_by_key,
                {
                    **published.metadata(),
                    **replicas,
                    "dagster/row_count": dg.MetadataValue.int(self.published_rows),
                    "partition_range": partitions,
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
        yield dg.MaterializeResult(
            asset_key=self.item.quarantine.asset_key,
            metadata=range_metadata(
                context,
                keys,
                self.item.quarantine.asset_key,
                self.quarantined_by_key,
                {
                    **rejected.metadata(),
                    "dagster/row_count": dg.MetadataValue.int(self.quarantined_rows),
                    "partition_range": partitions,
                    "partitions": partitions,
                },
            ),
        )
        yield from merge_check_results(self.checks, partitions=partitions)


def _compile(stages: Sequence[Stage], inputs: Mapping[str, DatasetName]) -> list[_Compiled]:
    """Load each stage's contract and check that ``build`` asks only for available frames."""
    if not stages:
        raise ValueError("a silver step needs at least one stage")
    available = set(inputs)
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
        compiled.append(_Compiled(stage, contract, parameters))
        available |= {contract.dataset.name, f"typed_{contract.dataset.name}"}
    return compiled


def _specs(item: _Compiled, known: Mapping[str, DatasetName]) -> list[dg.AssetSpec]:
    contract, name = item.contract, item.name
    deps = [known[p].asset_key for p in item.parameters if p in known] + [
        DatasetName.from_key(key).asset_key for key in item.stage.after
    ]
    deps = list(dict.fromkeys(deps))
    return [
        dg.AssetSpec(
            key=name.asset_key,
            deps=deps,
            group_name=name.domain,
            owners=[contract.owner],
            description=contract.description,
            kinds={"polars", "duckdb"} | ({"iceberg"} if contract.publishes_to_iceberg else set()),
            tags={"layer": name.layer, "tier": "curated", **contract.tags},
            freshness_policy=contract.freshness_policy(),
            metadata={
                "dagster/table_name": f"warehouse.{name.table}",
                "dagster/column_schema": contract.column_schema(),
                "dagster/column_lineage": _column_lineage(
                    contract, item, known, item.stage.column_lineage
                ),
                "contract": dg.MetadataValue.path(str(contract.path)),
            },
        ),
        dg.AssetSpec(
            key=item.quarantine.asset_key,
            deps=deps,
            group_name=name.domain,
            owners=[contract.owner],
            description=(
                f"Rows rejected from {name} with the rule, reason, file and line: "
                "nothing is dropped."
            ),
            kinds={"polars", "duckdb"},
            tags={"layer": name.layer, "tier": "quarantine", QUARANTINE_ROLE_TAG: "quarantine"},
            metadata={"dagster/table_name": f"warehouse.{item.quarantine.table}"},
        ),
    ]


def _column_lineage(
    contract: Contract, item: _Compiled, known: Mapping[str, DatasetName], explicit: Lineage
) -> dg.TableColumnLineage:
    """Column lineage for the table; Python assets declare theirs (dbt infers its own)."""
    sources = [known[p] for p in item.parameters if p in known]
    if not sources:
        return dg.TableColumnLineage(deps_by_column={})
    first = sources[0]
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for column in contract.columns:
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


def _read_input(
    con: Any, store: PartitionedFiles, dataset: DatasetName, values: Sequence[date]
) -> pl.DataFrame:
    """An input's partitions from the lake files, or from the warehouse for a dataset that an
    asset outside the factories wrote there."""
    if store.exists(dataset):
        return store.read_partitions(dataset, values)
    return read_partitions(con, dataset, values)


def _input_row_counts(
    con: Any, store: PartitionedFiles, dataset: DatasetName, values: Sequence[date]
) -> dict[str, int]:
    if store.exists(dataset):
        return store.partition_row_counts(dataset, values)
    return partition_row_counts(con, dataset, values)


def _dates(keys: Sequence[str]) -> list[date]:
    return [date.fromisoformat(key) for key in keys]


def _file_uri(location: str | None) -> str:
    """Iceberg reports a plain path for local warehouses; lineage wants a URI."""
    if not location:
        raise ValueError("the Iceberg writer reported no table location")
    return location if "://" in location else f"file://{location}"
