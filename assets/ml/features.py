"""Feature rows from aviation data: pure polars functions, one per feature view.

Time model. A partition is an aviation day: a local day at the New York airports (EWR, JFK and
LGA share America/New_York). Its window is ``[local midnight, next local midnight)`` in UTC, and
partition D of every export holds exactly the feature rows whose event timestamp falls in D's
window, so materialising D online is ``materialize(window start, window end)``.

Information time. A departure delay is known once the aircraft has left *and* its scheduled time
has passed (an early departure's delay is not final before the schedule says so); an arrival
delay once it has landed; a weather observation at its hour. Daily aggregates (origin, carrier,
route) are snapshots taken at the start of day D from what was known by then, which is why they
read silver flights (actual instants) rather than the aviation marts aggregated by local day:
arrivals after midnight would leak into the next morning's snapshot. ``*_known_at_s`` records
the newest information time behind every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

LOCAL_ZONE = "America/New_York"
DELAY_THRESHOLD_MIN = 15
"""A departure is delayed at 15 minutes or more (the US DOT definition the label uses too)."""
SNAPSHOT_HISTORY_DAYS = 32
"""Days of flights before a run's first day its snapshots need: 30-day windows, plus arrivals
landing the day after they left."""
AIRCRAFT_HISTORY_DAYS = 2
"""Days of departures before a run's first day the aircraft view needs: 24-hour windows, plus
departures delayed past midnight."""

UTC_US = pl.Datetime("us", "UTC")


def day_start(day: date) -> datetime:
    """Local midnight of ``day`` in New York, as a UTC instant."""
    return datetime.combine(day, time(), ZoneInfo(LOCAL_ZONE)).astimezone(UTC)


def day_window(first: date, last: date | None = None) -> tuple[datetime, datetime]:
    """The inclusive UTC window of ``first``..``last`` (Feast's ``materialize`` includes both
    ends): from the first local midnight to one microsecond before the one after ``last``."""
    end = day_start((last or first) + timedelta(days=1)) - timedelta(microseconds=1)
    return day_start(first), end


def flight_id(date_col: str = "flight_date") -> pl.Expr:
    """``<YYYYMMDD>-<carrier><number>-<origin>``: unique per departure in the source."""
    return pl.concat_str(
        pl.col(date_col).dt.strftime("%Y%m%d"),
        pl.lit("-"),
        pl.col("carrier"),
        pl.col("flight").cast(pl.String),
        pl.lit("-"),
        pl.col("origin"),
    )


def _utc(column: str) -> pl.Expr:
    """Silver stores UTC instants as naive timestamps."""
    return pl.col(column).dt.replace_time_zone("UTC").dt.cast_time_unit("us")


def _local_day(expr: pl.Expr) -> pl.Expr:
    return expr.dt.convert_time_zone(LOCAL_ZONE).dt.date()


def _day_starts(days: Sequence[date]) -> pl.DataFrame:
    return pl.DataFrame(
        {"partition_date": list(days), "event_timestamp": [day_start(d) for d in days]},
        schema={"partition_date": pl.Date, "event_timestamp": UTC_US},
    )


def _epoch_s(expr: pl.Expr) -> pl.Expr:
    return expr.dt.epoch("s").cast(pl.Int64)


def rolling_snapshots(
    events: pl.DataFrame,
    days: Sequence[date],
    *,
    key: str,
    window_days: int,
) -> pl.DataFrame:
    """Per key and day D: count, sum and newest information time of the ``events`` (columns
    ``key``, ``info_time`` UTC, ``value``) known in the ``window_days`` local days before D.

    An event known on local day k counts for the snapshots of days k+1 .. k+window_days; keys
    with nothing in a day's window get no row that day (Feast then answers null: cold start).
    """
    daily = (
        events.with_columns(_local_day(pl.col("info_time")).alias("info_day"))
        .group_by(key, "info_day")
        .agg(
            pl.len().alias("n"),
            pl.col("value").sum().alias("total"),
            pl.col("info_time").max().alias("known_at"),
        )
    )
    spread = pl.concat(
        [
            daily.with_columns((pl.col("info_day") + timedelta(days=k)).alias("partition_date"))
            for k in range(1, window_days + 1)
        ]
    )
    return (
        spread.filter(pl.col("partition_date").is_in(list(days)))
        .group_by(key, "partition_date")
        .agg(
            pl.col("n").sum(),
            pl.col("total").sum(),
            pl.col("known_at").max(),
        )
        .join(_day_starts(days), on="partition_date")
        .sort("partition_date", key)
    )


def _snapshot_view(snapshots: pl.DataFrame, *, key: str, mean: str, count: str) -> pl.DataFrame:
    """A rolling snapshot as a feature view's rows: the mean, the count and when it was known."""
    return snapshots.select(
        key,
        "event_timestamp",
        "partition_date",
        (pl.col("total") / pl.col("n")).alias(mean),
        pl.col("n").cast(pl.Int64).alias(count),
        _epoch_s(pl.col("known_at")).alias(f"{key}_known_at_s"),
    )


def origin_delay(flights: pl.DataFrame, days: Sequence[date]) -> pl.DataFrame:
    departed = flights.filter(
        pl.col("dep_delay_min").is_not_null() & pl.col("dep_utc").is_not_null()
    )
    events = departed.select(
        "origin",
        pl.max_horizontal(_utc("dep_utc"), _utc("sched_dep_utc")).alias("info_time"),
        pl.col("dep_delay_min").cast(pl.Float64).alias("value"),
    )
    return _snapshot_view(
        rolling_snapshots(events, days, key="origin", window_days=7),
        key="origin",
        mean="origin_avg_dep_delay_7d",
        count="origin_departures_7d",
    )


def carrier_delay(flights: pl.DataFrame, days: Sequence[date]) -> pl.DataFrame:
    departed = flights.filter(
        pl.col("dep_delay_min").is_not_null() & pl.col("dep_utc").is_not_null()
    )
    events = departed.select(
        "carrier",
        pl.max_horizontal(_utc("dep_utc"), _utc("sched_dep_utc")).alias("info_time"),
        (pl.col("dep_delay_min") >= DELAY_THRESHOLD_MIN).cast(pl.Float64).alias("value"),
    )
    return _snapshot_view(
        rolling_snapshots(events, days, key="carrier", window_days=30),
        key="carrier",
        mean="carrier_delay_rate_30d",
        count="carrier_departures_30d",
    )


def route_delay(flights: pl.DataFrame, days: Sequence[date]) -> pl.DataFrame:
    arrived = flights.filter(
        pl.col("arr_delay_min").is_not_null() & pl.col("arr_utc").is_not_null()
    )
    events = arrived.select(
        pl.concat_str("origin", pl.lit("-"), "dest").alias("route"),
        _utc("arr_utc").alias("info_time"),
        pl.col("arr_delay_min").cast(pl.Float64).alias("value"),
    )
    return _snapshot_view(
        rolling_snapshots(events, days, key="route", window_days=30),
        key="route",
        mean="route_avg_arr_delay_30d",
        count="route_arrivals_30d",
    )


def weather_severity() -> pl.Expr:
    """0-3: each of low visibility (10 mi → 0, 0 mi → 1), wind (40 mph and more → 1) and
    precipitation (0.3 in/h and more → 1) adds up to one; a missing measure adds nothing."""
    visibility = ((10 - pl.col("visib_mi")) / 10).clip(0, 1).fill_null(0)
    wind = (pl.col("wind_speed_mph") / 40).clip(0, 1).fill_null(0)
    precipitation = (pl.col("precip_in") / 0.3).clip(0, 1).fill_null(0)
    return visibility + wind + precipitation


def origin_weather(weather: pl.DataFrame) -> pl.DataFrame:
    """One row per origin and observed hour; partition = the observation's local day."""
    return (
        weather.filter(pl.col("time_hour").is_not_null())
        .select(
            "origin",
            _utc("time_hour").alias("event_timestamp"),
            pl.col("visib_mi").cast(pl.Float64),
            pl.col("wind_speed_mph").cast(pl.Float64),
            pl.col("precip_in").cast(pl.Float64),
        )
        .unique(["origin", "event_timestamp"], keep="first", maintain_order=True)
        .with_columns(
            weather_severity().alias("weather_severity"),
            _epoch_s(pl.col("event_timestamp")).alias("weather_known_at_s"),
            _local_day(pl.col("event_timestamp")).alias("partition_date"),
        )
        .sort("event_timestamp", "origin")
    )


def aircraft_delay(
    departures: pl.DataFrame, planes: pl.DataFrame, days: Sequence[date]
) -> pl.DataFrame:
    """One row per aircraft departure known in ``days`` (from ``aviation/gold/delay_propagation``:
    departed flights with a tail number), stamped with its information time; the mean over the
    aircraft's departures known in the 24 hours up to it; its age from the registry."""
    events = (
        departures.filter(pl.col("dep_delay_min").is_not_null())
        .select(
            "tailnum",
            pl.max_horizontal(
                _utc("sched_dep_utc") + pl.duration(minutes=pl.col("dep_delay_min")),
                _utc("sched_dep_utc"),
            ).alias("event_timestamp"),
            pl.col("dep_delay_min").cast(pl.Float64).alias("aircraft_last_dep_delay_min"),
        )
        # One aircraft cannot leave twice at one instant; a duplicate is a data error, and
        # keeping the larger delay makes the choice deterministic for online and offline alike.
        .sort("tailnum", "event_timestamp", "aircraft_last_dep_delay_min")
        .unique(["tailnum", "event_timestamp"], keep="last", maintain_order=True)
    )
    rolled = events.rolling(index_column="event_timestamp", period="24h", group_by="tailnum").agg(
        pl.col("aircraft_last_dep_delay_min").last(),
        pl.col("aircraft_last_dep_delay_min").mean().alias("aircraft_mean_dep_delay_24h"),
        pl.len().cast(pl.Int64).alias("aircraft_departures_24h"),
    )
    ages = planes.select(
        "tailnum", pl.col("year_built").cast(pl.Float64).alias("year_built")
    ).unique("tailnum")
    return (
        rolled.with_columns(_local_day(pl.col("event_timestamp")).alias("partition_date"))
        .filter(pl.col("partition_date").is_in(list(days)))
        .join(ages, on="tailnum", how="left")
        .select(
            "tailnum",
            "event_timestamp",
            "partition_date",
            (pl.col("event_timestamp").dt.year() - pl.col("year_built")).alias(
                "aircraft_age_years"
            ),
            "aircraft_last_dep_delay_min",
            "aircraft_mean_dep_delay_24h",
            "aircraft_departures_24h",
            _epoch_s(pl.col("event_timestamp")).alias("aircraft_known_at_s"),
        )
        .sort("event_timestamp", "tailnum")
    )


def flight_schedule(flights: pl.DataFrame) -> pl.DataFrame:
    """One row per scheduled departure (cancelled ones too), known from its local day's start."""
    starts = _day_starts(flights["flight_date"].unique().sort().to_list())
    return (
        flights.select(
            flight_id().alias("flight_id"),
            pl.col("flight_date").alias("partition_date"),
            pl.col("carrier").alias("flight_carrier"),
            pl.col("origin").alias("flight_origin"),
            pl.col("dest").alias("flight_dest"),
            pl.col("tailnum").alias("flight_tailnum"),
            _epoch_s(_utc("sched_dep_utc")).alias("sched_dep_epoch_s"),
            pl.col("sched_dep_local").dt.hour().cast(pl.Int64).alias("sched_dep_hour"),
            pl.col("flight_date").dt.weekday().cast(pl.Int64).alias("day_of_week"),
            pl.col("distance_mi").cast(pl.Float64),
        )
        .join(starts, on="partition_date")
        .with_columns(_epoch_s(pl.col("event_timestamp")).alias("flight_known_at_s"))
        .sort("partition_date", "flight_id")
    )


def training_entities(flights: pl.DataFrame) -> pl.DataFrame:
    """The training set's spine: departed flights with their label and prediction time.

    The prediction time is one second before the scheduled departure: Feast's join takes feature
    rows at or before it, and an aircraft's own departure is stamped no earlier than its
    schedule, so its own delay can never be one of its features. Cancelled flights have no
    departure delay and are left out (the label is undefined for them).
    """
    return flights.filter(pl.col("dep_delay_min").is_not_null()).select(
        flight_id().alias("flight_id"),
        pl.col("flight_date").alias("partition_date"),
        "carrier",
        "origin",
        pl.concat_str("origin", pl.lit("-"), "dest").alias("route"),
        "tailnum",
        _utc("sched_dep_utc").alias("sched_dep_utc"),
        (_utc("sched_dep_utc") - timedelta(seconds=1)).alias("predict_at"),
        pl.col("dep_delay_min").cast(pl.Int64),
        (pl.col("dep_delay_min") >= DELAY_THRESHOLD_MIN).alias("is_delayed"),
    )
