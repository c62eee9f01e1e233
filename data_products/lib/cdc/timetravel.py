"""Reading a captured table as of an LSN or a point in time.

Two ways, for two needs. The SCD2 history answers for *any* LSN or instant (a version is valid
from its commit up to the next one), so it is the exact replay. The mirrors' own snapshots (an
Iceberg snapshot or a Delta version per batch) answer at batch boundaries only, but read the
mirror exactly as it was published.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from data_products.lib.cdc.sinks import LSN_PROPERTY, IcebergHistory, IcebergMirror

HISTORY_META = (
    "operation",
    "valid_from",
    "valid_to",
    "valid_from_lsn",
    "valid_to_lsn",
    "is_current",
    "change_lsn",
    "change_seq",
    "xid",
)


def history_as_of(
    history: pl.DataFrame, *, lsn: int | None = None, at: datetime | None = None
) -> pl.DataFrame:
    """The table's rows as of ``lsn`` (commits up to and including it) or as of instant ``at``.

    Exactly one of them must be given. Deleted keys are absent (their tombstone is the version
    in force).
    """
    if (lsn is None) == (at is None):
        raise ValueError("give exactly one of lsn= or at=")
    if lsn is not None:
        start, end, point = pl.col("valid_from_lsn"), pl.col("valid_to_lsn"), pl.lit(lsn)
    else:
        start, end, point = pl.col("valid_from"), pl.col("valid_to"), pl.lit(at)
    in_force = (start <= point) & (end.is_null() | (end > point))
    return history.filter(in_force & (pl.col("operation") != "d")).drop(
        [c for c in HISTORY_META if c in history.columns]
    )


def read_history_as_of(
    history: IcebergHistory, *, lsn: int | None = None, at: datetime | None = None
) -> pl.DataFrame:
    """:func:`history_as_of` on the current history table."""
    table = history.table()
    if table is None:
        raise LookupError(f"history {history.name} does not exist yet")
    return history_as_of(pl.DataFrame(table.scan().to_arrow()), lsn=lsn, at=at)


def mirror_snapshot_at(mirror: IcebergMirror, lsn: int) -> int | None:
    """Id of the last Iceberg mirror snapshot holding changes up to ``lsn`` at most."""
    table = mirror.table()
    if table is None:
        return None
    chosen: int | None = None
    for entry in table.metadata.snapshot_log:
        snapshot = table.snapshot_by_id(entry.snapshot_id)
        stamp = snapshot.summary.get(LSN_PROPERTY) if snapshot and snapshot.summary else None
        if stamp is not None and int(stamp) <= lsn:
            chosen = entry.snapshot_id
    return chosen
