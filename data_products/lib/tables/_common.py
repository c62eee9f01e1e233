"""What every table writer shares, whatever the engine: the write result and its Dagster metadata,
partition-value normalisation, and the frame checks that must pass before any SQL or commit.

Keeping these engine-free means the DuckDB and Iceberg writers accept exactly the same inputs and
reject exactly the same mistakes, so a domain can move a dataset between engines without
re-learning the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import dagster as dg
import polars as pl
import pyarrow as pa

from data_products.lib.keys import (
    DatasetName,
    InvalidIdentifierError,
    validate_column,
    validate_partition_key,
)
from data_products.lib.partitions import describe_keys

PartitionValue = date | datetime | str
"""A partition as callers name it: a ``date``, a ``datetime`` (hourly) or a Dagster key string."""

_HOURLY_FORMAT = "%Y-%m-%d-%H:%M"
_MAX_OFFENDERS_SHOWN = 5


class TableWriteError(RuntimeError):
    """Base class of table-writer errors that are not identifier errors."""


class PartitionMismatchError(TableWriteError, ValueError):
    """The frame holds rows for partitions the write was not asked to replace.

    Writing them anyway would silently add rows to a partition that nobody deletes first, which
    breaks idempotency; so the whole write is refused.
    """


class SchemaEvolutionError(TableWriteError, TypeError):
    """A column's type changed in a way that cannot be widened without losing values."""


class TableNotFoundError(TableWriteError, LookupError):
    """The table has never been written."""


@dataclass(frozen=True)
class WriteResult:
    """What one table write did, in the shape every asset reports it."""

    table: str
    """Fully qualified physical name (``warehouse.commerce_silver.orders``)."""
    rows_written: int
    rows_replaced: int
    """Rows that the write removed (the old content of the replaced partitions or table)."""
    column_schema: dg.TableSchema
    partition_keys: tuple[str, ...] = ()
    """Keys of the replaced partitions, sorted; empty for a whole-table replace."""
    columns_added: tuple[str, ...] = ()
    columns_widened: tuple[str, ...] = ()
    snapshot_id: int | None = None
    """Iceberg snapshot that holds the result (for time travel); ``None`` for DuckDB."""
    location: str | None = None
    """Where the data lives on disk or object store (DuckDB file, Iceberg table location)."""

    def metadata(self) -> dict[str, dg.MetadataValue]:
        """Dagster materialisation metadata: the standard ``dagster/*`` keys plus the range."""
        metadata: dict[str, dg.MetadataValue] = {
            "dagster/row_count": dg.MetadataValue.int(self.rows_written),
            "dagster/table_name": dg.MetadataValue.text(self.table),
            "dagster/column_schema": dg.MetadataValue.table_schema(self.column_schema),
            "rows_replaced": dg.MetadataValue.int(self.rows_replaced),
        }
        if self.partition_keys:
            metadata["partition_range"] = dg.MetadataValue.text(
                describe_keys(list(self.partition_keys))
            )
        if self.columns_added:
            metadata["columns_added"] = dg.MetadataValue.json(list(self.columns_added))
        if self.columns_widened:
            metadata["columns_widened"] = dg.MetadataValue.json(list(self.columns_widened))
        if self.snapshot_id is not None:
            metadata["snapshot_id"] = dg.MetadataValue.int(self.snapshot_id)
        if self.location is not None:
            metadata["location"] = dg.MetadataValue.path(self.location)
        return metadata


@dataclass(frozen=True)
class PartitionSelection:
    """Validated, de-duplicated, sorted partition values of one write."""

    values: tuple[date, ...] | tuple[datetime, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(partition_key_of(value) for value in self.values)

    def literals_for(
        self, dtype: pl.DataType, *, column: str, dataset: DatasetName
    ) -> list[date | datetime | str]:
        """The values as they compare with a partition column of ``dtype`` (frame or table)."""
        if dtype == pl.String:
            return [*self.keys]
        if dtype == pl.Date and all(type(v) is date for v in self.values):
            return list(self.values)
        if (
            isinstance(dtype, pl.Datetime)
            and dtype.time_zone is None
            and all(type(v) is datetime for v in self.values)
        ):
            return list(self.values)
        raise TableWriteError(
            f"{dataset}: partition column {column!r} has type {dtype}; partitions "
            f"{describe_keys(list(self.keys))} need Date (daily keys), a time-zone-naive "
            "Datetime (hourly keys) or String"
        )


def partition_key_of(value: date | datetime) -> str:
    """The Dagster partition key of a daily (``date``) or hourly (``datetime``) value."""
    if isinstance(value, datetime):
        return value.strftime(_HOURLY_FORMAT)
    return value.isoformat()


def select_partitions(values: Sequence[PartitionValue]) -> PartitionSelection:
    """Validate partition values (keys through the key grammar) before they reach SQL.

    A bare string is refused even though it is a ``Sequence``: ``"2026-01-01"`` would otherwise be
    read as ten one-character partitions.
    """
    if isinstance(values, (str, bytes, date)):
        raise TypeError(
            f"partition_values must be a sequence of partitions, got the single value {values!r}"
        )
    normalised: set[date | datetime] = set()
    for value in values:
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                raise InvalidIdentifierError(
                    f"invalid partition value {value!r}: hourly partitions are time-zone-naive"
                )
            normalised.add(value)
        elif isinstance(value, date):
            normalised.add(value)
        elif isinstance(value, str):
            key = validate_partition_key(value)
            normalised.add(
                datetime.strptime(key, _HOURLY_FORMAT) if len(key) > 10 else date.fromisoformat(key)
            )
        else:
            raise InvalidIdentifierError(
                f"invalid partition value {value!r}: expected a date, datetime or partition key"
            )
    if not normalised:
        raise ValueError("partition_values is empty: name at least one partition to replace")
    if len({type(value) for value in normalised}) > 1:
        raise InvalidIdentifierError(
            "partition values mix daily (date) and hourly (datetime) partitions: "
            f"{sorted(map(str, normalised))}"
        )
    return PartitionSelection(tuple(sorted(normalised)))


def validate_frame_columns(dataset: DatasetName, df: pl.DataFrame) -> None:
    """Every column name must pass the identifier grammar before it is used in DDL."""
    for column in df.columns:
        validate_column(column, what=f"column name of {dataset}")


def check_rows_in_partitions(
    dataset: DatasetName,
    df: pl.DataFrame,
    partition_column: str,
    selection: PartitionSelection,
) -> None:
    """Refuse a frame with any row (null included) outside the partitions being replaced."""
    if partition_column not in df.columns:
        raise TableWriteError(
            f"{dataset}: partition column {partition_column!r} is not in the frame "
            f"(columns: {df.columns})"
        )
    dtype = df.schema[partition_column]
    wanted = pl.Series(selection.literals_for(dtype, column=partition_column, dataset=dataset))
    outside = (
        df.select(partition_column)
        .with_row_index("row")
        .filter(~pl.col(partition_column).is_in(wanted.cast(dtype).implode()).fill_null(False))
    )
    if outside.height:
        offending = outside.get_column(partition_column).unique(maintain_order=True)
        shown = [str(v) for v in offending.head(_MAX_OFFENDERS_SHOWN).to_list()]
        raise PartitionMismatchError(
            f"{dataset}: {outside.height} row(s) have {partition_column} outside the partitions "
            f"being written ({describe_keys(list(selection.keys))}); offending value(s): "
            f"{', '.join(shown)}{' ...' if offending.len() > len(shown) else ''} "
            f"(first at frame row {outside.item(0, 'row')})"
        )


def column_schema(df: pl.DataFrame) -> dg.TableSchema:
    """The frame's columns and polars types, for ``dagster/column_schema``."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=name, type=str(dtype)) for name, dtype in df.schema.items()]
    )


def to_arrow(df: pl.DataFrame) -> pa.Table:
    """Arrow without view types: pyiceberg and older readers know ``large_string`` but not
    ``string_view``, and DuckDB reads both, so one conversion serves every engine."""
    return df.to_arrow(compat_level=pl.CompatLevel.oldest())
