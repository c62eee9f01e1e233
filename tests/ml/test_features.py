"""The feature computations as pure functions on hand-built rows: windows by local day, the
information time of every row, and the prediction time of a training row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from assets.ml import features


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_day_window_follows_new_york_midnights_across_dst() -> None:
    start, end = features.day_window(date(2013, 3, 10))
    assert start == _utc("2013-03-10T05:00:00")  # EST
    assert end == _utc("2013-03-11T04:00:00") - timedelta(microseconds=1)  # EDT: a 23-hour day


def _flight(origin: str, sched: str, delay: int | None, **extra: object) -> dict[str, object]:
    sched_at = datetime.fromisoformat(sched)
    return {
        "flight_date": sched_at.date(),
        "carrier": "UA",
        "flight": 1,
        "origin": origin,
        "dest": "ORD",
        "sched_dep_utc": sched_at,
        "dep_utc": None if delay is None else sched_at + timedelta(minutes=delay),
        "dep_delay_min": delay,
        **extra,
    }


def test_snapshot_at_day_start_uses_only_departures_known_before_it() -> None:
    flights = pl.DataFrame(
        [
            _flight("JFK", "2013-01-01T15:00:00", 10),
            _flight("JFK", "2013-01-02T02:00:00", 30),  # 21:00 local on Jan 1
            # Scheduled 23:50 local on Jan 1, left 20 minutes late: known on Jan 2 (local).
            _flight("JFK", "2013-01-02T04:50:00", 20),
            _flight("JFK", "2013-01-01T16:00:00", None),  # cancelled: no delay to average
            _flight("EWR", "2012-12-20T15:00:00", 99),  # outside the 7-day window of Jan 2
        ],
        schema_overrides={"dep_delay_min": pl.Int32},
    )
    snapshots = features.origin_delay(flights, [date(2013, 1, 2), date(2013, 1, 3)])
    rows = {(r["origin"], r["partition_date"]): r for r in snapshots.iter_rows(named=True)}
    jan2 = rows[("JFK", date(2013, 1, 2))]
    assert jan2["event_timestamp"] == features.day_start(date(2013, 1, 2))
    assert jan2["origin_avg_dep_delay_7d"] == pytest.approx(20.0)  # (10 + 30) / 2
    assert jan2["origin_departures_7d"] == 2
    assert jan2["origin_known_at_s"] == int(_utc("2013-01-02T02:30:00").timestamp())
    jan3 = rows[("JFK", date(2013, 1, 3))]
    assert jan3["origin_avg_dep_delay_7d"] == pytest.approx(20.0)  # (10 + 30 + 20) / 3
    assert jan3["origin_departures_7d"] == 3
    assert ("EWR", date(2013, 1, 2)) not in rows
    for row in rows.values():
        assert row["origin_known_at_s"] < row["event_timestamp"].timestamp()


def test_aircraft_rows_are_known_at_departure_and_never_before_the_schedule() -> None:
    departures = pl.DataFrame(
        {
            "tailnum": ["N1", "N1", "N1"],
            "sched_dep_utc": [
                datetime(2013, 1, 2, 12),
                datetime(2013, 1, 2, 18),
                datetime(2013, 1, 3, 11),
            ],
            "dep_delay_min": [60, -5, 0],
        },
        schema_overrides={"dep_delay_min": pl.Int32},
    )
    planes = pl.DataFrame({"tailnum": ["N1"], "year_built": [2003]})
    rows = features.aircraft_delay(departures, planes, [date(2013, 1, 2), date(2013, 1, 3)])
    assert rows["event_timestamp"].to_list() == [
        _utc("2013-01-02T13:00:00"),  # left an hour late
        _utc("2013-01-02T18:00:00"),  # left early: known at its scheduled time
        _utc("2013-01-03T11:00:00"),
    ]
    # The 24 hours up to Jan 3 11:00 reach back past Jan 2 13:00: all three departures.
    assert rows["aircraft_mean_dep_delay_24h"].to_list() == pytest.approx([60.0, 27.5, 55 / 3])
    assert rows["aircraft_departures_24h"].to_list() == [1, 2, 3]
    assert rows["aircraft_age_years"].to_list() == [10.0, 10.0, 10.0]


def test_training_rows_predict_one_second_before_departure_and_skip_cancelled() -> None:
    flights = pl.DataFrame(
        [
            _flight("LGA", "2013-01-05T13:00:00", 15, tailnum="N2"),
            _flight("LGA", "2013-01-05T14:00:00", 14, tailnum=None),
            _flight("LGA", "2013-01-05T15:00:00", None, tailnum="N3"),
        ],
        schema_overrides={"dep_delay_min": pl.Int32},
    )
    entities = features.training_entities(flights)
    assert entities["flight_id"].to_list() == ["20130105-UA1-LGA", "20130105-UA1-LGA"]
    assert entities["is_delayed"].to_list() == [True, False]
    assert entities["route"].to_list() == ["LGA-ORD", "LGA-ORD"]
    assert (entities["sched_dep_utc"] - entities["predict_at"]).to_list() == [
        timedelta(seconds=1)
    ] * 2


def test_weather_severity_adds_visibility_wind_and_precipitation() -> None:
    weather = pl.DataFrame(
        {
            "origin": ["JFK", "JFK", "JFK"],
            "time_hour": [
                datetime(2013, 1, 1, 5),
                datetime(2013, 1, 1, 6),
                datetime(2013, 1, 1, 7),
            ],
            "visib_mi": [10.0, 0.0, None],
            "wind_speed_mph": [0.0, 40.0, 20.0],
            "precip_in": [0.0, 0.3, None],
        }
    )
    rows = features.origin_weather(weather)
    assert rows["weather_severity"].to_list() == pytest.approx([0.0, 3.0, 0.5])
    assert rows["partition_date"].to_list() == [date(2013, 1, 1)] * 3
