"""Partition helpers: every time-partitioned asset reads the keys of its run through here, so a
single partition and a single-run backfill range are handled by the same code path."""

from __future__ import annotations

from datetime import date

import dagster as dg

from data_products.lib.keys import validate_partition_key

SINGLE_RUN = dg.BackfillPolicy.single_run()


def daily(start_date: str, end_date: str | None = None) -> dg.DailyPartitionsDefinition:
    """Daily partitions; ``end_offset=1`` so today's (still-arriving) drop can be loaded."""
    return dg.DailyPartitionsDefinition(start_date=start_date, end_date=end_date, end_offset=1)


def run_partition_keys(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[str]:
    """The validated partition keys this run covers (one key or a whole backfill range)."""
    keys = (
        list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
    )
    return [validate_partition_key(key) for key in keys]


def run_dates(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[date]:
    """Daily partition keys of this run as dates."""
    return [date.fromisoformat(key) for key in run_partition_keys(context)]


def describe_keys(keys: list[str]) -> str:
    """``2026-01-01`` or ``2026-01-01...2026-01-14 (14 partitions)`` for logs and metadata."""
    if len(keys) == 1:
        return keys[0]
    return f"{keys[0]}...{keys[-1]} ({len(keys)} partitions)"
