"""Is each mirror the source as of the LSN it claims? Row by row, by key and content hash.

The source keeps moving while we look, so "the source as of the batch's LSN" is built exactly:
one REPEATABLE READ snapshot of the source tables, plus the changes the slot still holds that
this snapshot can see (by transaction id), applied in memory to the mirror. If the mirror is right,
``mirror + visible pending changes == snapshot`` holds exactly, whatever commits meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from data_products.lib.cdc.frames import OP_COLUMN, change_frames, latest_per_key, snapshot_frame
from data_products.lib.cdc.lsn import parse_lsn
from data_products.lib.cdc.pgoutput import decode_transactions
from data_products.lib.cdc.schema import KEY_COLUMN, KEY_SEPARATOR, CdcState
from data_products.lib.cdc.source import SlotSource, TableSnapshot


@dataclass
class Comparison:
    table: str
    sink: str
    source_rows: int
    sink_rows: int
    matching: int
    missing_in_sink: list[str] = field(default_factory=list)
    extra_in_sink: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            self.matching
            + len(self.missing_in_sink)
            + len(self.extra_in_sink)
            + len(self.different)
        )

    @property
    def consistency_rate(self) -> float:
        return 1.0 if self.total == 0 else self.matching / self.total

    def sample(self, n: int = 5) -> dict[str, list[str]]:
        def show(keys: list[str]) -> list[str]:
            return [k.replace(KEY_SEPARATOR, ",") for k in keys[:n]]

        return {
            "missing_in_sink": show(self.missing_in_sink),
            "extra_in_sink": show(self.extra_in_sink),
            "different": show(self.different),
        }


@dataclass
class SourceView:
    """The source tables as of one snapshot, and what the slot still owes the lake."""

    tables: dict[str, pl.DataFrame]
    pending: dict[str, pl.DataFrame]
    lag_bytes: int
    lag_seconds: float
    pending_transactions: int


def source_view(source: SlotSource, state: CdcState) -> SourceView:
    """One consistent source snapshot, typed like the lake, plus the visible pending changes."""
    with source.connect() as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap = conn.execute("SELECT pg_current_snapshot()::text").fetchone()[0]  # type: ignore[index]
        raw = source.read_tables(conn)
        conn.execute("COMMIT")
        wal_now = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
    now_lsn = parse_lsn(wal_now)
    transactions, _ = decode_transactions(source.peek(upto_lsn=now_lsn))
    transactions = [t for t in transactions if t.commit_lsn > state.as_of_lsn]
    visible = [t for t in transactions if _visible(t.xid, snap)]
    work = state.copy()
    pending, _ = change_frames(visible, work)
    tables = {name: typed_source(work, name, table) for name, table in raw.items()}
    oldest = transactions[0].commit_time if transactions else None
    lag_seconds = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    return SourceView(
        tables=tables,
        pending=pending,
        lag_bytes=max(0, now_lsn - state.as_of_lsn),
        lag_seconds=max(0.0, lag_seconds),
        pending_transactions=len(transactions),
    )


def compare(
    table: str, sink: str, mirror: pl.DataFrame, view: SourceView, columns: list[str]
) -> Comparison:
    """``mirror`` (+ the pending changes the snapshot saw) against the source snapshot."""
    expected = view.tables[table]
    pending = view.pending.get(table)
    current = mirror
    if pending is not None and pending.height:
        latest = latest_per_key(pending)
        current = pl.concat(
            [
                mirror.filter(~pl.col(KEY_COLUMN).is_in(latest[KEY_COLUMN].implode())),
                latest.filter(pl.col(OP_COLUMN) != "d"),
            ],
            how="diagonal_relaxed",
        )
    shared = [c for c in columns if c in expected.columns and c in current.columns]
    left = row_hashes(expected, shared)
    right = row_hashes(current, shared)
    joined = left.join(right, on=KEY_COLUMN, how="full", suffix="_sink", coalesce=True)
    missing = joined.filter(pl.col("_hash_sink").is_null())[KEY_COLUMN].to_list()
    extra = joined.filter(pl.col("_hash").is_null())[KEY_COLUMN].to_list()
    both = joined.filter(pl.col("_hash").is_not_null() & pl.col("_hash_sink").is_not_null())
    different = both.filter(pl.col("_hash") != pl.col("_hash_sink"))[KEY_COLUMN].to_list()
    return Comparison(
        table=table,
        sink=sink,
        source_rows=expected.height,
        sink_rows=current.height,
        matching=both.height - len(different),
        missing_in_sink=sorted(missing),
        extra_in_sink=sorted(extra),
        different=sorted(different),
    )


def row_hashes(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``_cdc_key`` and one content hash per row over ``columns``."""
    # Hash a canonical text rendering: the same value must hash the same whichever engine
    # (Iceberg, Delta, polars) produced its physical type (e.g. Decimal precision, string views).
    rendered = [pl.col(c).cast(pl.String).fill_null("\x00") for c in columns]
    return frame.select(
        KEY_COLUMN, pl.concat_str(rendered, separator="\x1e").hash(seed=0).alias("_hash")
    )


def typed_source(state: CdcState, name: str, table: TableSnapshot) -> pl.DataFrame:
    table_state = state.tables[name]
    unknown = [c for c in table.rows.columns if c not in table_state.column_map]
    rows = table.rows.drop(unknown)  # columns added after the pending changes: next batch's
    return snapshot_frame(table_state, rows, lsn=0, taken_at=datetime.now(UTC))


def _visible(xid: int, snapshot: str) -> bool:
    """Whether a committed transaction is visible in ``xmin:xmax:xip`` (pg_snapshot text)."""
    # pg_snapshot holds 64-bit xids (epoch << 32 | xid); pgoutput sends the 32-bit xid.
    xmin, xmax, xip = (part for part in snapshot.split(":"))
    low = 0xFFFFFFFF
    if xid < int(xmin) & low:
        return True
    if xid >= int(xmax) & low:
        return False
    return xid not in {int(x) & low for x in xip.split(",") if x}
