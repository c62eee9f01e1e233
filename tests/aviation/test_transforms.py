"""Typing and time-zone conversion on known rows of the real 2013 data, read exactly as bronze
reads the landed drops. Every expected UTC time below was worked out by hand from the local time
and the zone's offset on that date (EST = UTC-5, EDT = UTC-4, PST/PDT = UTC-8/-7, MST (Phoenix,
no DST) = UTC-7, HST = UTC-10); US DST began 2013-03-10 02:00 and ended 2013-11-03 02:00."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from assets.aviation import drops, transforms
from data_products.lib.bronze import latest_reference_drop
from data_products.lib.contracts import load_contract_for
from data_products.lib.landing import read_csv_as_delivered, read_landing
from data_products.lib.quarantine import split

DAYS = ["2013-01-01", "2013-03-09", "2013-03-10", "2013-07-01", "2013-11-02", "2013-11-03"]


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    for day in DAYS:
        drops.land(root, day, day)
    return root


def _reference(landing: Path, table: str) -> pl.DataFrame:
    snapshot, path = latest_reference_drop(landing, "aviation", table)
    return read_csv_as_delivered(path, landing, snapshot)


@pytest.fixture(scope="module")
def typed(landing: Path) -> pl.DataFrame:
    bronze = read_landing(landing, "aviation", "flights", DAYS).frame
    return transforms.type_flights(
        bronze,
        transforms.type_airports(_reference(landing, "airports")),
        transforms.type_airlines(_reference(landing, "airlines")),
        transforms.type_planes(_reference(landing, "planes")),
    )


def _flight(typed: pl.DataFrame, day: str, carrier: str, number: int) -> dict:
    rows = typed.filter(
        (pl.col("flight_date") == date.fromisoformat(day))
        & (pl.col("carrier") == carrier)
        & (pl.col("flight") == number)
    )
    assert rows.height == 1, f"{carrier}{number} on {day}: {rows.height} rows"
    return rows.row(0, named=True)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("day", "carrier", "number", "expected"),
    [
        # The first row of flights.csv: EWR 05:15 EST -> IAH 08:19 CST (UTC-6).
        (
            "2013-01-01",
            "UA",
            1545,
            {
                "sched_dep_utc": "2013-01-01 10:15",
                "dep_utc": "2013-01-01 10:17",
                "sched_arr_utc": "2013-01-01 14:19",
                "arr_utc": "2013-01-01 14:30",
            },
        ),
        # The day before DST begins: JFK 06:00 EST, LAX 09:15 PST.
        (
            "2013-03-09",
            "UA",
            797,
            {"sched_dep_utc": "2013-03-09 11:00", "sched_arr_utc": "2013-03-09 17:15"},
        ),
        # DST began at 02:00 that morning: EWR 06:19 EDT; Phoenix keeps MST (UTC-7): 09:03.
        (
            "2013-03-10",
            "UA",
            1236,
            {
                "sched_dep_utc": "2013-03-10 10:19",
                "sched_arr_utc": "2013-03-10 16:03",
                "arr_utc": "2013-03-10 15:51",
            },
        ),
        # Overnight, across the date line in UTC: JFK 21:00 EDT, LAX 00:32 PDT the next day.
        (
            "2013-03-10",
            "DL",
            2363,
            {
                "sched_dep_utc": "2013-03-11 01:00",
                "sched_arr_local": "2013-03-11 00:32",
                "sched_arr_utc": "2013-03-11 07:32",
                "arr_local": "2013-03-11 00:17",
            },
        ),
        # Honolulu (HST, UTC-10, no DST): JFK 10:00 EDT -> HNL 14:30 the same local day.
        (
            "2013-07-01",
            "HA",
            51,
            {"sched_dep_utc": "2013-07-01 14:00", "sched_arr_utc": "2013-07-02 00:30"},
        ),
        # The day before DST ends: JFK 06:30 EDT, LAX 09:22 PDT.
        (
            "2013-11-02",
            "UA",
            797,
            {"sched_dep_utc": "2013-11-02 10:30", "sched_arr_utc": "2013-11-02 16:22"},
        ),
        # DST ended at 02:00 that morning: EWR 06:50 EST, LAX 09:48 PST.
        (
            "2013-11-03",
            "UA",
            1439,
            {"sched_dep_utc": "2013-11-03 11:50", "sched_arr_utc": "2013-11-03 17:48"},
        ),
    ],
)
def test_local_times_convert_to_utc_with_each_airports_zone(
    typed: pl.DataFrame, day: str, carrier: str, number: int, expected: dict[str, str]
) -> None:
    row = _flight(typed, day, carrier, number)
    for column, value in expected.items():
        assert row[column] == _at(value), f"{carrier}{number} {day} {column}: {row[column]}"


def test_typing_of_a_known_row(typed: pl.DataFrame) -> None:
    row = _flight(typed, "2013-01-01", "UA", 1545)
    assert (row["origin"], row["dest"], row["tailnum"]) == ("EWR", "IAH", "N14228")
    assert (row["dep_delay_min"], row["arr_delay_min"], row["air_time_min"]) == (2, 11, 227)
    assert row["distance_mi"] == 1400 and row["sched_dep_hour"] == 5
    assert row["sched_dep_local"] == _at("2013-01-01 05:15")
    assert row["time_hour"] == _at("2013-01-01 10:00")
    assert not row["is_cancelled"] and not row["is_diverted"]


def test_the_conversion_agrees_with_the_sources_utc_hour_on_every_row(typed: pl.DataFrame) -> None:
    assert typed.height > 5000
    assert typed.get_column("_matches_time_hour").all()
    # and arrival UTC - scheduled arrival UTC is the delivered arrival delay, DST days included
    arrived = typed.filter(pl.col("arr_utc").is_not_null() & pl.col("arr_delay_min").is_not_null())
    minutes = (pl.col("arr_utc") - pl.col("sched_arr_utc")).dt.total_minutes()
    assert arrived.filter(minutes != pl.col("arr_delay_min")).height == 0


def test_cancelled_flights_are_kept_and_flagged(typed: pl.DataFrame, landing: Path) -> None:
    delivered = read_landing(landing, "aviation", "flights", DAYS).frame
    not_departed = delivered.filter(pl.col("dep_time") == "NA").height
    assert not_departed > 0
    cancelled = typed.filter(pl.col("is_cancelled"))
    assert cancelled.height == not_departed
    assert cancelled.get_column("dep_utc").null_count() == cancelled.height
    assert cancelled.get_column("sched_dep_utc").null_count() == 0


def test_unknown_destination_zone_leaves_arrival_utc_empty_not_wrong(typed: pl.DataFrame) -> None:
    san_juan = typed.filter(pl.col("dest") == "SJU")
    assert san_juan.height > 0
    assert not san_juan.get_column("_known_dest").any()
    assert san_juan.get_column("arr_utc").null_count() == san_juan.height
    assert san_juan.get_column("sched_dep_utc").null_count() == 0


def test_weather_keeps_both_01_hours_of_the_dst_fall_back(landing: Path) -> None:
    bronze = read_landing(landing, "aviation", "weather", ["2013-11-03"]).frame
    weather = transforms.type_weather(bronze)
    ewr_one = weather.filter((pl.col("origin") == "EWR") & (pl.col("obs_hour_local") == 1))
    assert sorted(ewr_one.get_column("time_hour").to_list()) == [
        _at("2013-11-03 05:00"),  # 01:00 EDT
        _at("2013-11-03 06:00"),  # 01:00 EST
    ]
    assert weather.select(pl.struct("origin", "time_hour").is_unique().all()).item()


def test_a_non_number_is_quarantined_by_its_type_rule_naming_file_and_line(
    landing: Path,
) -> None:
    bronze = read_landing(landing, "aviation", "flights", ["2013-01-01"]).frame
    bronze = bronze.with_columns(
        pl.when(pl.col("_source_line") == 2)
        .then(pl.lit("12x"))
        .otherwise("dep_delay")
        .alias("dep_delay")
    )
    typed = transforms.type_flights(
        bronze,
        transforms.type_airports(_reference(landing, "airports")),
        transforms.type_airlines(_reference(landing, "airlines")),
        transforms.type_planes(_reference(landing, "planes")),
    )
    row = typed.filter(pl.col("_source_line") == 2).row(0, named=True)
    assert row["dep_delay_min"] is None and row["dep_delay_min__raw"] == "12x"
    result = split(typed, load_contract_for("aviation.silver.flights"))
    (rejected,) = result.quarantined.to_dicts()
    assert rejected["rule_id"] == "flights.dep_delay_min.type"
    assert "12x" in rejected["reason"]
    assert "aviation/2013-01-01/flights.csv line 2" in rejected["reason"]
    assert result.published.height == typed.height - 1
