"""Per-row time zones (``data_products.lib.timezones``) on worked examples.

Expected instants are worked out by hand from the zones' 2013 rules: New York EST = UTC-5 and
EDT = UTC-4, DST from 2013-03-10 02:00 (02:00-02:59 does not exist) to 2013-11-03 02:00
(01:00-01:59 happens twice); Los Angeles PST/PDT = UTC-8/-7 with the same dates; Phoenix
MST = UTC-7 all year (no DST).
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from data_products.lib.timezones import (
    first_local_occurrence_after,
    known_zones,
    local_to_utc,
    utc_to_local,
)

NY, LA, PHX = "America/New_York", "America/Los_Angeles", "America/Phoenix"
ZONES = [NY, LA, PHX]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _to_utc(rows: list[tuple[str, str | None]], **options: str) -> list[datetime | None]:
    frame = pl.DataFrame(
        {"local": [_at(t) for t, _ in rows], "zone": [z for _, z in rows]},
        schema={"local": pl.Datetime("us"), "zone": pl.String},
    )
    expr = local_to_utc(pl.col("local"), pl.col("zone"), ZONES, **options)  # type: ignore[arg-type]
    return frame.select(expr.alias("utc"))["utc"].to_list()


def test_each_row_converts_in_its_own_zone_with_its_own_dst() -> None:
    rows = [
        ("2013-01-15 08:00", NY),  # EST
        ("2013-07-01 08:00", NY),  # EDT
        ("2013-01-15 08:00", LA),  # PST
        ("2013-07-01 08:00", LA),  # PDT
        ("2013-07-01 08:00", PHX),  # MST, no DST
    ]
    assert _to_utc(rows) == [
        _at("2013-01-15 13:00"),
        _at("2013-07-01 12:00"),
        _at("2013-01-15 16:00"),
        _at("2013-07-01 15:00"),
        _at("2013-07-01 15:00"),
    ]


def test_a_skipped_wall_clock_time_is_null_not_invented() -> None:
    # 02:30 on 2013-03-10 never happened in New York; in Phoenix (no DST) it did.
    assert _to_utc([("2013-03-10 02:30", NY), ("2013-03-10 02:30", PHX)]) == [
        None,
        _at("2013-03-10 09:30"),
    ]


def test_a_repeated_wall_clock_time_is_the_earliest_unless_asked_otherwise() -> None:
    repeated = [("2013-11-03 01:30", NY)]
    assert _to_utc(repeated) == [_at("2013-11-03 05:30")]  # the EDT one
    assert _to_utc(repeated, ambiguous="latest") == [_at("2013-11-03 06:30")]  # the EST one
    # Outside the repeated hour both choices agree.
    assert _to_utc([("2013-11-03 03:00", NY)], ambiguous="latest") == [_at("2013-11-03 08:00")]


def test_unlisted_or_missing_zone_gives_null() -> None:
    assert _to_utc([("2013-01-15 08:00", "America/Chicago"), ("2013-01-15 08:00", None)]) == [
        None,
        None,
    ]


def test_unknown_zone_names_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus_Mons"):
        local_to_utc(pl.col("local"), pl.col("zone"), [NY, "Mars/Olympus_Mons", None])
    assert NY in known_zones()


def test_utc_to_local_shows_the_repeated_hour_twice_and_skips_the_gap() -> None:
    frame = pl.DataFrame(
        {
            "utc": [
                _at("2013-11-03 05:30"),
                _at("2013-11-03 06:30"),
                _at("2013-03-10 06:59"),
                _at("2013-03-10 07:00"),
                _at("2013-03-10 07:00"),
            ],
            "zone": [NY, NY, NY, NY, "Unlisted/Zone"],
        }
    )
    local = frame.select(utc_to_local(pl.col("utc"), pl.col("zone"), ZONES).alias("local"))
    assert local["local"].to_list() == [
        _at("2013-11-03 01:30"),
        _at("2013-11-03 01:30"),
        _at("2013-03-10 01:59"),
        _at("2013-03-10 03:00"),
        None,
    ]


def _arrival(day: str, hhmm: int, zone: str, departed_utc: str) -> tuple[datetime, datetime]:
    frame = pl.DataFrame(
        {
            "day": [date.fromisoformat(day)],
            "minutes": [hhmm // 100 * 60 + hhmm % 100],
            "zone": [zone],
            "departed": [_at(departed_utc)],
        }
    )
    local, utc = first_local_occurrence_after(
        pl.col("day"), pl.col("minutes"), pl.col("zone"), ZONES, not_before=pl.col("departed")
    )
    row = frame.select(local.alias("local"), utc.alias("utc")).row(0)
    return row[0], row[1]


def test_an_arrival_the_same_day_stays_on_that_day() -> None:
    # Leaves New York 08:00 EST (13:00 UTC), lands in Los Angeles at 11:00 PST.
    assert _arrival("2013-01-15", 1100, LA, "2013-01-15 13:00") == (
        _at("2013-01-15 11:00"),
        _at("2013-01-15 19:00"),
    )


def test_an_arrival_after_midnight_is_dated_the_next_day() -> None:
    # Leaves New York 2013-01-01 23:30 EST (04:30 UTC on the 2nd), lands in LA at "0230".
    assert _arrival("2013-01-01", 230, LA, "2013-01-02 04:30") == (
        _at("2013-01-02 02:30"),
        _at("2013-01-02 10:30"),
    )


def test_an_arrival_the_day_before_by_the_clock_is_kept() -> None:
    # Leaves New York 2013-01-02 00:10 EST (05:10 UTC) and lands in Los Angeles at 23:55 PST on
    # the 1st by the local clock (07:55 UTC on the 2nd): the day before the departure's date.
    assert _arrival("2013-01-02", 2355, LA, "2013-01-02 05:10") == (
        _at("2013-01-01 23:55"),
        _at("2013-01-02 07:55"),
    )


def test_an_arrival_in_the_repeated_hour_can_be_its_second_occurrence() -> None:
    # Departs 2013-11-03 at 05:45 UTC (01:45 EDT), lands 40 minutes later in the same zone at
    # "0125" by the clock: after the fall back, 01:25 EST = 06:25 UTC the same day, not the
    # next day and not the first 01:25 (05:25 UTC, before the departure).
    assert _arrival("2013-11-03", 125, NY, "2013-11-03 05:45") == (
        _at("2013-11-03 01:25"),
        _at("2013-11-03 06:25"),
    )
    # Departing before the first 01:25, the first occurrence is the one.
    assert _arrival("2013-11-03", 125, NY, "2013-11-03 05:00") == (
        _at("2013-11-03 01:25"),
        _at("2013-11-03 05:25"),
    )


def test_an_arrival_in_the_skipped_hour_is_the_next_real_occurrence() -> None:
    # "0230" does not exist in New York on 2013-03-10; the next one is 2013-03-11 02:30 EDT.
    assert _arrival("2013-03-10", 230, NY, "2013-03-10 05:30") == (
        _at("2013-03-11 02:30"),
        _at("2013-03-11 06:30"),
    )
