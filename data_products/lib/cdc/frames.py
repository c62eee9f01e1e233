"""Decoded transactions → one typed change frame per source table.

A frame has one row per row change, in commit order, with the lake columns (source names mapped
through the table's column map) plus the change's metadata. An update that changes the key is
split into a delete of the old key and an upsert of the new one, so every later step can treat a
key as the unit of change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from data_products.lib.cdc.lsn import format_lsn
from data_products.lib.cdc.pgoutput import UNCHANGED, Relation, Transaction, Value
from data_products.lib.cdc.schema import KEY_COLUMN, KEY_SEPARATOR, CdcState, TableState, cast_text

OP_COLUMN = "_cdc_op"
LSN_COLUMN = "_cdc_lsn"
"""Commit LSN of the change's transaction: the position every watermark and as-of read uses."""
CHANGE_LSN_COLUMN = "_cdc_change_lsn"
SEQ_COLUMN = "_cdc_seq"
COMMIT_TIME_COLUMN = "_cdc_commit_time"
XID_COLUMN = "_cdc_xid"
META_COLUMNS = (
    OP_COLUMN,
    LSN_COLUMN,
    CHANGE_LSN_COLUMN,
    SEQ_COLUMN,
    COMMIT_TIME_COLUMN,
    XID_COLUMN,
)
META_SCHEMA: dict[str, pl.DataType] = {
    OP_COLUMN: pl.String(),
    LSN_COLUMN: pl.Int64(),
    CHANGE_LSN_COLUMN: pl.Int64(),
    SEQ_COLUMN: pl.Int64(),
    COMMIT_TIME_COLUMN: pl.Datetime("us", "UTC"),
    XID_COLUMN: pl.Int64(),
}


class ChangeError(ValueError):
    """A change the sinks cannot take; names the table, the key and the LSN."""

    def __init__(self, table: str, key: str | None, commit_lsn: int, detail: str) -> None:
        self.table, self.key, self.commit_lsn = table, key, commit_lsn
        shown = "?" if key is None else key.replace(KEY_SEPARATOR, ",")
        super().__init__(
            f"table {table}, key ({shown}), LSN {format_lsn(commit_lsn)}: {detail}; the slot "
            "stays before this transaction, so nothing after it is lost"
        )


@dataclass
class _Columns:
    """Column-wise buffers for one table (much faster to build than a list of dicts)."""

    state: TableState
    data: dict[str, list[str | None]] = field(default_factory=dict)
    meta: dict[str, list[object]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    rows: int = 0

    def __post_init__(self) -> None:
        self.meta = {name: [] for name in META_COLUMNS}

    def add(
        self,
        key: str,
        lake_values: dict[str, str | None],
        op: str,
        tx: Transaction,
        change_lsn: int,
        seq: int,
    ) -> None:
        data = self.data
        if data.keys() != lake_values.keys():
            # A column seen for the first time is back-filled with nulls once (not on every
            # row: building ``[None] * rows`` per call made the batch quadratic, 1 s for 20k).
            for name in lake_values.keys() - data.keys():
                data[name] = [None] * self.rows
            for name in data.keys() - lake_values.keys():
                data[name].append(None)
        for name, value in lake_values.items():
            data[name].append(value)
        self.keys.append(key)
        for name, meta_value in zip(
            META_COLUMNS, (op, tx.commit_lsn, change_lsn, seq, tx.commit_time, tx.xid), strict=True
        ):
            self.meta[name].append(meta_value)
        self.rows += 1


def change_frames(
    transactions: Sequence[Transaction], state: CdcState
) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """Typed change frames by table, and the schema events seen (added/renamed columns).

    ``state`` is updated in place as relations evolve. Raises :class:`ChangeError` for the first
    change that cannot be represented.
    """
    buffers: dict[str, _Columns] = {}
    events: list[str] = []
    seen: dict[int, tuple[TableState, list[str]]] = {}
    for tx in transactions:
        for change in tx.changes:
            relation = change.relation
            resolved = seen.get(id(relation))
            if resolved is None:
                table_state = _table_state(state, relation, tx)
                events += [
                    f"{relation.name}: {e}" for e in table_state.observe(relation, tx.commit_lsn)
                ]
                lake_names = [table_state.column_map[c.name] for c in relation.columns]
                resolved = seen[id(relation)] = (table_state, lake_names)
            table_state, lake_names = resolved
            buffer = buffers.setdefault(table_state.table, _Columns(table_state))
            before = _image(change.before, lake_names, None, table_state, tx)
            after = _image(change.after, lake_names, change.before, table_state, tx)
            seq = change.seq * 2
            if change.op == "d":
                assert before is not None
                buffer.add(_key(before, table_state, tx), before, "d", tx, change.lsn, seq)
                continue
            assert after is not None
            key = _key(after, table_state, tx)
            if change.op == "u" and before is not None:
                old_key = _key(before, table_state, tx)
                if old_key != key:  # a key update: the old key is gone
                    buffer.add(old_key, before, "d", tx, change.lsn, seq - 1)
            buffer.add(key, after, change.op, tx, change.lsn, seq)
    return {table: _typed(buffer) for table, buffer in buffers.items()}, events


def _table_state(state: CdcState, relation: Relation, tx: Transaction) -> TableState:
    table_state = state.tables.get(relation.name)
    if table_state is None:
        raise ChangeError(
            relation.name,
            None,
            tx.commit_lsn,
            "the table is published but was never snapshotted into the lake",
        )
    return table_state


def _image(
    values: tuple[Value, ...] | None,
    lake_names: list[str],
    before: tuple[Value, ...] | None,
    state: TableState,
    tx: Transaction,
) -> dict[str, str | None] | None:
    if values is None:
        return None
    image: dict[str, str | None] = {}
    for position, (name, value) in enumerate(zip(lake_names, values, strict=True)):
        if value is UNCHANGED:
            value = before[position] if before is not None else UNCHANGED
            if value is UNCHANGED:
                raise ChangeError(
                    state.table,
                    None,
                    tx.commit_lsn,
                    f"column {name} was not resent (unchanged TOAST) and there is no before "
                    "image: set REPLICA IDENTITY FULL on the table",
                )
        image[name] = value  # type: ignore[assignment]
    return image


def _key(image: dict[str, str | None], state: TableState, tx: Transaction) -> str:
    parts = [image.get(k) for k in state.keys]
    if any(p is None for p in parts):
        raise ChangeError(state.table, None, tx.commit_lsn, f"key columns {state.keys} are null")
    return KEY_SEPARATOR.join(parts)  # type: ignore[arg-type]


def _typed(buffer: _Columns) -> pl.DataFrame:
    state = buffer.state
    schema = state.lake_schema()
    columns: dict[str, pl.Series] = {KEY_COLUMN: pl.Series(KEY_COLUMN, buffer.keys, pl.String())}
    for name, dtype in schema.items():
        raw = pl.Series(name, buffer.data.get(name, [None] * buffer.rows), pl.String())
        typed = _cast_column(raw, dtype, name, buffer)
        columns[name] = typed
    for name, dtype in META_SCHEMA.items():
        columns[name] = pl.Series(name, buffer.meta[name], dtype)
    return pl.DataFrame(columns)


def _cast_column(raw: pl.Series, dtype: pl.DataType, name: str, buffer: _Columns) -> pl.Series:
    typed = cast_text(raw, dtype).alias(name)
    lost = raw.is_not_null() & typed.is_null()
    if lost.any():
        index = int(lost.arg_true()[0])
        value = str(raw[index])
        raise ChangeError(
            buffer.state.table,
            buffer.keys[index],
            int(buffer.meta[LSN_COLUMN][index]),  # type: ignore[call-overload]
            f"column {name}: value {value[:40]!r} cannot be held as lake type {dtype}",
        )
    return typed


def snapshot_frame(
    state: TableState, raw: pl.DataFrame, *, lsn: int, taken_at: datetime
) -> pl.DataFrame:
    """A table copied as text at the slot's consistent point → a change frame of ``r`` rows."""
    raw = raw.rename({name: state.column_map[name] for name in raw.columns})
    keys = pl.concat_str([pl.col(k) for k in state.keys], separator=KEY_SEPARATOR)
    raw = raw.with_columns(keys.alias(KEY_COLUMN))
    columns: dict[str, pl.Series] = {KEY_COLUMN: raw[KEY_COLUMN]}
    for name, dtype in state.lake_schema().items():
        text = raw[name] if name in raw.columns else pl.Series(name, [None] * raw.height, pl.String)
        typed = cast_text(text, dtype).alias(name)
        lost = text.is_not_null() & typed.is_null()
        if lost.any():
            index = int(lost.arg_true()[0])
            raise ChangeError(
                state.table,
                raw[KEY_COLUMN][index],
                lsn,
                f"column {name}: value {str(text[index])[:40]!r} cannot be held as lake type "
                f"{dtype} (initial snapshot)",
            )
        columns[name] = typed
    frame = pl.DataFrame(columns)
    return frame.with_columns(
        pl.lit("r", pl.String()).alias(OP_COLUMN),
        pl.lit(lsn, pl.Int64()).alias(LSN_COLUMN),
        pl.lit(lsn, pl.Int64()).alias(CHANGE_LSN_COLUMN),
        pl.int_range(pl.len(), dtype=pl.Int64()).alias(SEQ_COLUMN),
        pl.lit(taken_at, pl.Datetime("us", "UTC")).alias(COMMIT_TIME_COLUMN),
        pl.lit(None, pl.Int64()).alias(XID_COLUMN),
    )


def latest_per_key(changes: pl.DataFrame) -> pl.DataFrame:
    """The last change of every key in commit order: what a mirror merge needs (a key updated
    five times and then deleted in one batch is one delete)."""
    return changes.sort(LSN_COLUMN, SEQ_COLUMN).unique(
        subset=KEY_COLUMN, keep="last", maintain_order=True
    )
