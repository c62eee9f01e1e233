"""Atomic, idempotent partition and table replaces in Iceberg tables (pyiceberg).

Why not the dagster-iceberg IO manager: it fails on single-run partition ranges and reads only the
first partition of a range (docs/pinned-stack.md). Why not ``upsert``: it does not scale (minutes
for thousands of rows against millions). A partition replace is instead one pyiceberg transaction --
schema union, delete-by-filter on the partition column, append -- committed as one metadata swap,
so readers see either the old partitions or the new ones, and a failed write changes nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError, ValidationError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, In
from pyiceberg.types import DateType, IcebergType, StringType, TimestampType

from data_products.lib.keys import DatasetName, validate_column
from data_products.lib.tables._common import (
    PartitionSelection,
    PartitionValue,
    SchemaEvolutionError,
    TableNotFoundError,
    TableWriteError,
    WriteResult,
    check_rows_in_partitions,
    column_schema,
    select_partitions,
    to_arrow,
    validate_frame_columns,
)

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

__all__ = ["IcebergTables"]

# pyiceberg warns when an overwrite's delete matches nothing -- the normal case for a first
# write of a partition, so it is noise here (and an error under warnings-as-errors tests).
_NOTHING_DELETED = "Delete operation did not match any records"
_PARTITION_LITERAL_DTYPES: dict[type[IcebergType], pl.DataType] = {
    DateType: pl.Date(),
    TimestampType: pl.Datetime("us"),
    StringType: pl.String(),
}


class IcebergTables:
    """Dataset-level writes and reads on one Iceberg catalog.

    Tables live at ``<domain>_<layer>.<name>`` (the same names as in DuckDB) and are created on
    first write, identity-partitioned on the partition column so a partition replace drops whole
    files instead of rewriting them.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def replace_partitions(
        self,
        dataset: DatasetName,
        df: pl.DataFrame,
        partition_column: str = "partition_date",
        partition_values: Sequence[PartitionValue] = (),
    ) -> WriteResult:
        """Replace the given partitions with the rows of ``df``, in one atomic commit.

        Same contract as the DuckDB writer: a single partition or a whole range; every row of
        ``df`` must belong to ``partition_values``; a partition without rows in ``df`` ends up
        empty; running it twice gives the same table content.
        """
        validate_column(partition_column, what=f"partition column of {dataset}")
        selection = select_partitions(partition_values)
        validate_frame_columns(dataset, df)
        check_rows_in_partitions(dataset, df, partition_column, selection)
        return self._replace(dataset, df, partition_column, selection)

    def replace_table(self, dataset: DatasetName, df: pl.DataFrame) -> WriteResult:
        """Replace the whole content of an (unpartitioned) table, in one atomic commit."""
        validate_frame_columns(dataset, df)
        return self._replace(dataset, df, None, None)

    def read(
        self,
        dataset: DatasetName,
        partition_values: Sequence[PartitionValue] | None = None,
        snapshot_id: int | None = None,
        *,
        partition_column: str = "partition_date",
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Rows of the given partitions (all rows if ``None``), optionally as of a snapshot.

        ``snapshot_id`` is time travel: pass the ``snapshot_id`` of an earlier
        :class:`WriteResult` to read the table as that write left it. Raises
        :class:`TableNotFoundError` when the table was never written (see the DuckDB reader for
        why that is not an empty frame).
        """
        selection = None
        if partition_values is not None:
            validate_column(partition_column, what=f"partition column of {dataset}")
            selection = select_partitions(partition_values)
        selected: tuple[str, ...] = ("*",)
        if columns is not None:
            if isinstance(columns, str):
                raise TypeError(f"columns must be a sequence of names, got {columns!r}")
            selected = tuple(validate_column(c, what=f"column of {dataset}") for c in columns)
        table = self.load_table(dataset)
        row_filter: BooleanExpression = AlwaysTrue()
        if selection is not None:
            row_filter = self._partition_filter(table, dataset, partition_column, selection)
        scan = table.scan(row_filter=row_filter, selected_fields=selected, snapshot_id=snapshot_id)
        return pl.DataFrame(scan.to_arrow())

    def load_table(self, dataset: DatasetName) -> Table:
        """The pyiceberg table, for what this class does not wrap (snapshots, CDC, scans)."""
        try:
            return self.catalog.load_table(_identifier(dataset))
        except NoSuchTableError as exc:
            raise TableNotFoundError(
                f"Iceberg table {self._name(dataset)} does not exist yet: materialise "
                f"{dataset} first"
            ) from exc

    def exists(self, dataset: DatasetName) -> bool:
        return self.catalog.table_exists(_identifier(dataset))

    def _replace(
        self,
        dataset: DatasetName,
        df: pl.DataFrame,
        partition_column: str | None,
        selection: PartitionSelection | None,
    ) -> WriteResult:
        arrow = _iceberg_arrow(dataset, to_arrow(df))
        table = self._load_or_create(dataset, arrow.schema, partition_column)
        old_columns = {f.name for f in table.schema().fields}
        if partition_column is not None and partition_column not in old_columns:
            raise TableWriteError(
                f"{self._name(dataset)} exists without partition column {partition_column!r}: "
                "it was written as an unpartitioned table"
            )
        overwrite_filter: BooleanExpression = AlwaysTrue()
        if partition_column is not None and selection is not None:
            overwrite_filter = self._partition_filter(table, dataset, partition_column, selection)
        old_field_types = {f.name: f.field_type for f in table.schema().fields}
        records_before = _total_records(table)
        try:
            with table.transaction() as txn:
                with txn.update_schema() as update:
                    update.union_by_name(arrow.schema)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=_NOTHING_DELETED)
                    txn.overwrite(arrow, overwrite_filter=overwrite_filter)
        except ValidationError as exc:
            raise SchemaEvolutionError(
                f"{self._name(dataset)}: the frame's schema cannot be merged into the table's "
                f"({exc}); cast the column in the asset or migrate the table deliberately"
            ) from exc
        snapshot = table.current_snapshot()
        new_fields = table.schema().fields
        return WriteResult(
            table=self._name(dataset),
            rows_written=df.height,
            # Net change of the table's record count is exact even when a partially matching
            # data file had to be rewritten (its kept rows count as deleted and re-added).
            rows_replaced=records_before + df.height - _total_records(table),
            column_schema=column_schema(df),
            partition_keys=selection.keys if selection else (),
            columns_added=tuple(f.name for f in new_fields if f.name not in old_columns),
            columns_widened=tuple(
                f.name
                for f in new_fields
                if f.name in old_field_types and f.field_type != old_field_types[f.name]
            ),
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            location=table.location(),
        )

    def _load_or_create(
        self, dataset: DatasetName, schema: pa.Schema, partition_column: str | None
    ) -> Table:
        identifier = _identifier(dataset)
        try:
            return self.catalog.load_table(identifier)
        except NoSuchTableError:
            pass
        self.catalog.create_namespace_if_not_exists(dataset.schema)
        try:
            # Created empty, with its spec, in one catalog commit; the data goes in with the
            # first overwrite like every later write, so there is one write path to trust.
            with self.catalog.create_table_transaction(identifier, schema=schema) as txn:
                if partition_column is not None:
                    with txn.update_spec() as spec:
                        spec.add_identity(partition_column)
        except TableAlreadyExistsError:
            pass  # another writer created it between our load and create: use theirs
        return self.catalog.load_table(identifier)

    def _partition_filter(
        self,
        table: Table,
        dataset: DatasetName,
        partition_column: str,
        selection: PartitionSelection,
    ) -> BooleanExpression:
        field = table.schema().find_field(partition_column)  # raises naming the field
        dtype = _PARTITION_LITERAL_DTYPES.get(type(field.field_type))
        if dtype is None:
            raise TableWriteError(
                f"{self._name(dataset)}.{partition_column} has Iceberg type {field.field_type}; "
                "partitions need a date, timestamp or string column"
            )
        literals = selection.literals_for(dtype, column=partition_column, dataset=dataset)
        # In's __new__ takes (term, literals); mypy only sees the pydantic field signature.
        return In(partition_column, literals)  # type: ignore[misc, call-arg]

    def _name(self, dataset: DatasetName) -> str:
        return f"{self.catalog.name}.{dataset.schema}.{dataset.name}"


def _identifier(dataset: DatasetName) -> tuple[str, str]:
    return (dataset.schema, dataset.name)


def _total_records(table: Table) -> int:
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records", "0"))


def _iceberg_arrow(dataset: DatasetName, arrow: pa.Table) -> pa.Table:
    """Cast Arrow types Iceberg has no equivalent for to the nearest lossless Iceberg type.

    Iceberg has 32/64-bit signed integers only, microsecond times and timestamps (UTC when
    zoned), and no dictionaries. A cast that would lose values (unsigned 64-bit, nanoseconds that
    are not whole microseconds) fails naming the column instead of truncating silently.
    """
    for index, field in enumerate(arrow.schema):
        where = f"{dataset}.{field.name}"
        target = _iceberg_type(field.type, where)
        if target == field.type:
            continue
        try:
            column = arrow.column(index).cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaEvolutionError(
                f"{where}: cannot store {field.type} in Iceberg as {target} without losing "
                f"values ({exc})"
            ) from exc
        arrow = arrow.set_column(index, pa.field(field.name, target, field.nullable), column)
    return arrow


def _iceberg_type(arrow_type: pa.DataType, where: str) -> pa.DataType:
    t = pa.types
    if t.is_int8(arrow_type) or t.is_int16(arrow_type):
        return pa.int32()
    if t.is_uint8(arrow_type) or t.is_uint16(arrow_type):
        return pa.int32()
    if t.is_uint32(arrow_type):
        return pa.int64()
    if t.is_float16(arrow_type):
        return pa.float32()
    if t.is_timestamp(arrow_type):
        # Arrow stores zoned timestamps as UTC instants, so re-labelling the zone keeps them.
        return pa.timestamp("us", tz="UTC" if arrow_type.tz else None)
    if t.is_time(arrow_type):
        return pa.time64("us")
    if t.is_dictionary(arrow_type):
        return _iceberg_type(arrow_type.value_type, where)
    if t.is_string_view(arrow_type):
        return pa.large_string()
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return pa.large_list(_iceberg_type(arrow_type.value_type, f"{where}[]"))
    if t.is_struct(arrow_type):
        return pa.struct(
            [
                pa.field(f.name, _iceberg_type(f.type, f"{where}.{f.name}"), f.nullable)
                for f in arrow_type
            ]
        )
    if (
        t.is_uint64(arrow_type)
        or t.is_null(arrow_type)
        or t.is_duration(arrow_type)
        or t.is_interval(arrow_type)
    ):
        raise SchemaEvolutionError(
            f"{where}: Arrow type {arrow_type} has no Iceberg equivalent; cast the column "
            "(e.g. Null columns to their intended type, UInt64 to Int64 or Decimal)"
        )
    return arrow_type
