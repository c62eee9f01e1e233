"""Materialisation metadata for single-run partition ranges: what goes on every day's event,
what on one.

Dagster writes one materialisation per partition of a range run, each a copy of the step's
metadata. Table-level entries (the column schema, column lineage, columns added by drift)
describe the table the run left behind, not a day, and made up half of each event: a year of
aviation wrote 11 assets x 365 copies of ~5 KB schemas, and serialising and storing them was
the largest per-partition cost of the run. They now go on the range's last partition only,
which is the asset's latest materialisation (the one the UI and lineage read); the asset
definitions carry the declared schema and lineage for every other view. Per-day counts go on
their own day's event, so the UI shows each day's rows, and the run's total travels as
``run_rows`` (what OpenLineage reports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

TABLE_LEVEL_KEYS = (
    "dagster/column_schema",
    "dagster/column_lineage",
    "columns_added",
    "columns_widened",
)
ROW_COUNT = "dagster/row_count"
RUN_ROWS = "run_rows"


def last_partition_only(
    context: dg.AssetExecutionContext,
    metadata: Mapping[str, Any],
    *,
    asset_key: dg.AssetKey,
    partition_keys: Sequence[str],
) -> dict[str, Any]:
    """``metadata`` without its table-level entries, which are attached to the last partition's
    event instead. A run of one partition, or an unpartitioned one, keeps everything."""
    if len(partition_keys) <= 1:
        return dict(metadata)
    table_level = {k: v for k, v in metadata.items() if k in TABLE_LEVEL_KEYS}
    if table_level:
        context.add_asset_metadata(
            table_level, asset_key=asset_key, partition_key=partition_keys[-1]
        )
    return {k: v for k, v in metadata.items() if k not in TABLE_LEVEL_KEYS}


def rows_per_partition(
    context: dg.AssetExecutionContext,
    metadata: Mapping[str, Any],
    *,
    asset_key: dg.AssetKey,
    rows: Mapping[str, int],
) -> dict[str, Any]:
    """Each partition's own ``dagster/row_count`` on its event, and ``metadata``'s run total
    moved to ``run_rows``. ``rows`` must name every partition of the run (0 for an empty day),
    or the days left out would show the run's total as theirs."""
    if len(rows) <= 1:
        return dict(metadata)
    for key, count in rows.items():
        context.add_asset_metadata(
            {ROW_COUNT: dg.MetadataValue.int(count)}, asset_key=asset_key, partition_key=key
        )
    out = {k: v for k, v in metadata.items() if k != ROW_COUNT}
    if ROW_COUNT in metadata:
        out[RUN_ROWS] = metadata[ROW_COUNT]
    return out


def range_metadata(
    context: dg.AssetExecutionContext,
    keys: Sequence[str],
    asset_key: dg.AssetKey,
    by_key: Mapping[str, int] | None,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """A range run's result metadata: each day's rows on its own event (when ``by_key`` counted
    them), the table-level entries on the last day's."""
    out = dict(metadata)
    if by_key is not None:
        out = rows_per_partition(
            context, out, asset_key=asset_key, rows={key: by_key.get(key, 0) for key in keys}
        )
    return last_partition_only(context, out, asset_key=asset_key, partition_keys=keys)


def add_day_counts(
    counts: dict[str, int] | None, frame: pl.DataFrame, keys: Sequence[str]
) -> dict[str, int] | None:
    """``counts`` plus ``frame``'s rows per daily key in ``keys`` (by ``partition_date``); None
    once a key is not a day or the frame has no ``partition_date``, so nothing is reported."""
    if counts is None or "partition_date" not in frame.columns:
        return None
    if any(len(key) != 10 for key in keys):
        return None
    per_day = dict(frame.group_by("partition_date").len().iter_rows())
    for key in keys:
        counts[key] = counts.get(key, 0) + int(per_day.get(date.fromisoformat(key), 0))
    return counts
