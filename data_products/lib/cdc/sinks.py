"""The three lake tables CDC maintains per source table, each idempotent by LSN.

- :class:`IcebergMirror`: the source table's current rows. A batch is one pyiceberg transaction:
  schema union, delete-by-filter on the batch's keys, append of their latest images -- one
  atomic metadata swap. Not ``upsert``, which does not scale (STACK.md: minutes for thousands of
  rows against millions).
- :class:`DeltaMirror`: the same rows in Delta, one ``MERGE`` with a source deduplicated per key.
- :class:`IcebergHistory`: SCD2, every version of every row with its validity interval.

Each commit records the batch's end LSN *in the same commit* (an Iceberg snapshot property, a
Delta ``txn`` application transaction), so a sink knows exactly which changes it already holds:
replaying a batch after a crash between the sink commits and the slot advance changes nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import And, EqualTo, In

from data_products.lib.cdc.frames import (
    CHANGE_LSN_COLUMN,
    COMMIT_TIME_COLUMN,
    LSN_COLUMN,
    OP_COLUMN,
    SEQ_COLUMN,
    XID_COLUMN,
    latest_per_key,
)
from data_products.lib.cdc.schema import KEY_COLUMN
from data_products.lib.keys import validate_identifier
from data_products.lib.tables._common import to_arrow

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

LSN_PROPERTY = "cdc.lsn"
MIRROR_META = (OP_COLUMN, LSN_COLUMN, COMMIT_TIME_COLUMN)
_NOTHING_DELETED = "Delete operation did not match any records"


def mirror_frame(changes: pl.DataFrame, data_columns: Sequence[str]) -> pl.DataFrame:
    """Latest change per key, in the mirror's column layout (deletes kept, flagged ``d``)."""
    latest = latest_per_key(changes)
    return latest.select(KEY_COLUMN, *data_columns, *MIRROR_META)


class IcebergMirror:
    def __init__(self, catalog: Catalog, namespace: str, table: str) -> None:
        self.catalog = catalog
        self.identifier = (
            validate_identifier(namespace, what="Iceberg namespace"),
            validate_identifier(table, what="Iceberg table"),
        )

    @property
    def name(self) -> str:
        return ".".join(self.identifier)

    def table(self) -> Table | None:
        try:
            return self.catalog.load_table(self.identifier)
        except NoSuchTableError:
            return None

    def watermark(self) -> int:
        table = self.table()
        return 0 if table is None else snapshot_lsn(table)

    def replace_all(self, rows: pl.DataFrame, lsn: int) -> None:
        """The initial snapshot: the whole table, stamped with the slot's consistent point."""
        arrow = to_arrow(rows)
        table = self._create(arrow.schema)
        with table.transaction() as txn:
            with txn.update_schema() as update:
                update.union_by_name(arrow.schema)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NOTHING_DELETED)
                txn.overwrite(arrow, snapshot_properties={LSN_PROPERTY: str(lsn)})

    def apply(self, latest: pl.DataFrame, lsn: int) -> None:
        """Delete every key of the batch, append the ones whose last change is not a delete."""
        upserts = to_arrow(latest.filter(pl.col(OP_COLUMN) != "d"))
        table = self._create(upserts.schema)
        keys = latest[KEY_COLUMN].to_list()
        stamp = {LSN_PROPERTY: str(lsn)}
        with table.transaction() as txn:
            with txn.update_schema() as update:
                update.union_by_name(upserts.schema)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NOTHING_DELETED)
                txn.delete(
                    In(KEY_COLUMN, keys),  # type: ignore[misc, call-arg, arg-type]
                    snapshot_properties={} if upserts.num_rows else stamp,
                )
            if upserts.num_rows:
                txn.append(upserts, snapshot_properties=stamp)

    def read(self, snapshot_id: int | None = None) -> pl.DataFrame:
        table = self.table()
        if table is None:
            raise LookupError(f"Iceberg mirror {self.name} does not exist yet")
        return pl.DataFrame(table.scan(snapshot_id=snapshot_id).to_arrow())

    def _create(self, schema: pa.Schema) -> Table:
        table = self.table()
        if table is not None:
            return table
        self.catalog.create_namespace_if_not_exists(self.identifier[0])
        return self.catalog.create_table(self.identifier, schema=schema)


class IcebergHistory(IcebergMirror):
    """SCD2: one row per version; ``valid_to`` is the next version's commit, ``is_current``
    marks each key's latest version (a delete's latest version is its tombstone)."""

    def replace_all(self, rows: pl.DataFrame, lsn: int) -> None:
        super().replace_all(versions(rows), lsn)

    def apply(self, changes: pl.DataFrame, lsn: int) -> None:  # type: ignore[override]
        new = versions(changes)
        keys = new[KEY_COLUMN].unique().to_list()
        table = self._create(to_arrow(new).schema)
        current_filter = And(
            In(KEY_COLUMN, keys),  # type: ignore[misc, call-arg, arg-type]
            EqualTo("is_current", True),  # type: ignore[misc, call-arg, arg-type]
        )
        current = pl.DataFrame(table.scan(row_filter=current_filter).to_arrow())
        first = new.group_by(KEY_COLUMN).agg(
            pl.col("valid_from").first().alias("_next_from"),
            pl.col("valid_from_lsn").first().alias("_next_lsn"),
        )
        closed = (
            current.join(first, on=KEY_COLUMN, how="inner")
            .with_columns(
                pl.col("_next_from").alias("valid_to"),
                pl.col("_next_lsn").alias("valid_to_lsn"),
                pl.lit(False).alias("is_current"),
            )
            .drop("_next_from", "_next_lsn")
        )
        appended = to_arrow(pl.concat([closed, new], how="diagonal_relaxed"))
        with table.transaction() as txn:
            with txn.update_schema() as update:
                update.union_by_name(appended.schema)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NOTHING_DELETED)
                txn.delete(current_filter)
            txn.append(appended, snapshot_properties={LSN_PROPERTY: str(lsn)})


def versions(changes: pl.DataFrame) -> pl.DataFrame:
    """Change rows → SCD2 versions, each closed by the key's next change in the frame."""
    ordered = changes.sort(LSN_COLUMN, SEQ_COLUMN)
    data = [c for c in ordered.columns if not c.startswith("_cdc_")]
    nxt = pl.col(COMMIT_TIME_COLUMN).shift(-1).over(KEY_COLUMN, order_by=[LSN_COLUMN, SEQ_COLUMN])
    nxt_lsn = pl.col(LSN_COLUMN).shift(-1).over(KEY_COLUMN, order_by=[LSN_COLUMN, SEQ_COLUMN])
    return ordered.select(
        KEY_COLUMN,
        *data,
        pl.col(OP_COLUMN).alias("operation"),
        pl.col(COMMIT_TIME_COLUMN).alias("valid_from"),
        nxt.alias("valid_to"),
        pl.col(LSN_COLUMN).alias("valid_from_lsn"),
        nxt_lsn.alias("valid_to_lsn"),
        nxt_lsn.is_null().alias("is_current"),
        pl.col(CHANGE_LSN_COLUMN).alias("change_lsn"),
        pl.col(SEQ_COLUMN).alias("change_seq"),
        pl.col(XID_COLUMN).alias("xid"),
    )


class DeltaMirror:
    def __init__(self, uri: str, app_id: str, storage_options: dict[str, str] | None = None):
        self.uri = uri
        self.app_id = app_id
        self.storage_options = storage_options or None

    def table(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=self.storage_options)
        except DeltaTableNotFound:
            return None

    def watermark(self) -> int:
        table = self.table()
        if table is None:
            return 0
        return table.transaction_version(self.app_id) or 0

    def _commit(self, lsn: int) -> CommitProperties:
        return CommitProperties(
            app_transactions=[Transaction(app_id=self.app_id, version=lsn)],
            custom_metadata={LSN_PROPERTY: str(lsn)},
        )

    def replace_all(self, rows: pl.DataFrame, lsn: int) -> None:
        write_deltalake(
            self.uri,
            to_arrow(rows),
            mode="overwrite",
            schema_mode="overwrite",
            storage_options=self.storage_options,
            commit_properties=self._commit(lsn),
        )

    def apply(self, latest: pl.DataFrame, lsn: int) -> None:
        table = self.table()
        if table is None:
            self.replace_all(latest.filter(pl.col(OP_COLUMN) != "d"), lsn)
            return
        (
            table.merge(
                to_arrow(latest),
                predicate=f"t.{KEY_COLUMN} = s.{KEY_COLUMN}",
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=self._commit(lsn),
            )
            .when_matched_delete(predicate=f"s.{OP_COLUMN} = 'd'")
            .when_matched_update_all(predicate=f"s.{OP_COLUMN} <> 'd'")
            .when_not_matched_insert_all(predicate=f"s.{OP_COLUMN} <> 'd'")
            .execute()
        )

    def read(self, version: int | None = None) -> pl.DataFrame:
        table = self.table()
        if table is None:
            raise LookupError(f"Delta mirror {self.uri} does not exist yet")
        if version is not None:
            table.load_as_version(version)
        return pl.DataFrame(table.to_pyarrow_table())


def snapshot_lsn(table: Table, snapshot_id: int | None = None) -> int:
    """The LSN a snapshot (the current one by default) holds all changes up to."""
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id else table.current_snapshot()
    # The delete half of a batch has no stamp; walk back to the stamped append.
    while snapshot is not None:
        value = snapshot.summary.get(LSN_PROPERTY) if snapshot.summary else None
        if value is not None:
            return int(value)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent else None
    return 0
