"""Wall-clock times in per-row time zones, converted to and from UTC, vectorised.

Why a module: polars converts a column between *one* time zone and UTC, but operational data
(flights, shipments, meter readings) carries local times whose zone differs per row (the airport,
the depot). These helpers build one ``when/then`` branch per distinct zone, so no Python runs per
row, and they settle the two DST edge cases once for every domain:

- an *ambiguous* wall-clock time (the repeated hour when clocks fall back) resolves to the
  earliest instant, which is what schedules published in local time mean by "01:30", unless the
  caller knows better (an arrival after a known departure may be the second "01:30");
- a *non-existent* wall-clock time (the skipped hour when clocks spring forward) becomes null
  rather than an invented instant, so a contract rule can see it.

Every timestamp returned is naive UTC, the platform's convention for ``TIMESTAMP`` columns.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from functools import cache
from typing import Literal

import polars as pl

UTC = "UTC"

Ambiguous = Literal["earliest", "latest"]


@cache
def known_zones() -> frozenset[str]:
    """IANA zone names available to this Python (and so to polars)."""
    return frozenset(zoneinfo.available_timezones())


def _zones(zones: Iterable[str | None]) -> list[str]:
    distinct = sorted({z for z in zones if z})
    unknown = [z for z in distinct if z not in known_zones()]
    if unknown:
        raise ValueError(f"unknown IANA time zones {unknown}; filter them out first")
    return distinct


def local_to_utc(
    local: pl.Expr,
    zone: pl.Expr,
    zones: Iterable[str | None],
    *,
    ambiguous: Ambiguous = "earliest",
) -> pl.Expr:
    """Naive local wall-clock ``local`` in the row's ``zone`` → naive UTC (null if unknown zone).

    ``zones`` lists the zone names that may occur (e.g. the reference table's distinct values);
    a row whose zone is not among them, or null, gets null. A time in the repeated hour resolves
    to its ``ambiguous`` occurrence; a time in the skipped hour is null.
    """
    result: pl.Expr = pl.lit(None, dtype=pl.Datetime("us"))
    for name in _zones(zones):
        converted = (
            local.cast(pl.Datetime("us"))
            .dt.replace_time_zone(name, ambiguous=ambiguous, non_existent="null")
            .dt.convert_time_zone(UTC)
            .dt.replace_time_zone(None)
        )
        result = pl.when(zone == name).then(converted).otherwise(result)
    return result


def utc_to_local(utc: pl.Expr, zone: pl.Expr, zones: Iterable[str | None]) -> pl.Expr:
    """Naive UTC ``utc`` → naive wall-clock time in the row's ``zone`` (null if unknown zone)."""
    result: pl.Expr = pl.lit(None, dtype=pl.Datetime("us"))
    for name in _zones(zones):
        converted = (
            utc.cast(pl.Datetime("us"))
            .dt.replace_time_zone(UTC)
            .dt.convert_time_zone(name)
            .dt.replace_time_zone(None)
        )
        result = pl.when(zone == name).then(converted).otherwise(result)
    return result


def first_local_occurrence_after(
    day: pl.Expr,
    minutes: pl.Expr,
    zone: pl.Expr,
    zones: Iterable[str | None],
    *,
    not_before: pl.Expr,
) -> tuple[pl.Expr, pl.Expr]:
    """(naive local, naive UTC) of the first instant at or after ``not_before`` (naive UTC) whose
    wall clock in ``zone`` reads ``minutes`` past midnight, searched on ``day`` - 1, ``day`` and
    ``day`` + 1.

    Why: schedules give an arrival as a time of day without a date ("0830"); the date is the one
    that puts the arrival after the departure. Journeys shorter than a day have exactly one such
    instant in that window. A wall-clock time in the repeated hour of a fall-back day occurs
    twice: both occurrences are candidates (the first unless the departure is after it), so a
    red-eye landing at the second "01:30" is not pushed to the next day. A time in the skipped
    hour of a spring-forward day does not occur that day, so the next day's is taken.
    """
    names = _zones(zones)
    occurrences: tuple[Ambiguous, ...] = ("earliest", "latest")
    candidates = []
    for offset in (-1, 0, 1):
        local = (day.cast(pl.Date) + pl.duration(days=offset)).cast(pl.Datetime("us")) + (
            pl.duration(minutes=minutes)
        )
        # In time order: a day's first occurrence, its second (the same instant unless the time
        # is in the repeated hour), then the next day's.
        for ambiguous in occurrences:
            candidates.append((local, local_to_utc(local, zone, names, ambiguous=ambiguous)))
    local_pick: pl.Expr = pl.lit(None, dtype=pl.Datetime("us"))
    utc_pick: pl.Expr = pl.lit(None, dtype=pl.Datetime("us"))
    # Reverse order, so the earliest qualifying candidate wins the when/otherwise chain.
    for local, utc in reversed(candidates):
        qualifies = utc.is_not_null() & (utc >= not_before)
        local_pick = pl.when(qualifies).then(local).otherwise(local_pick)
        utc_pick = pl.when(qualifies).then(utc).otherwise(utc_pick)
    return local_pick, utc_pick
