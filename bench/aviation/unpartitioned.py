"""The aviation pipeline with no partitions, for the benchmark's baseline.

The same platform factories the domain uses for unpartitioned data (``data_products.lib.bronze``
and ``silver`` without partitions), the same transforms, contracts (same asset keys, so the same
rules and checks) and dbt models (``domain_dbt_assets(..., None)``: one build over all history).
The year's flights and weather are landed as one snapshot file each. One change to the typing
input: bronze stamps a snapshot's rows with the snapshot date, so each row's ``partition_date``
is set to its own day before typing, as the daily drops would have; the ``in_partition`` rules
then judge the same thing as in the partitioned run.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from assets.aviation import transforms
from data_products.lib.bronze import bronze_asset
from data_products.lib.dbt import domain_dbt_assets
from data_products.lib.discovery import apply_platform_policy
from data_products.lib.silver import silver_asset
from resources import default_resources

BRONZE, SILVER = "aviation/bronze", "aviation/silver"


def _own_day(bronze: pl.DataFrame) -> pl.DataFrame:
    day = pl.date(
        pl.col("year").cast(pl.Int32, strict=False),
        pl.col("month").cast(pl.Int32, strict=False),
        pl.col("day").cast(pl.Int32, strict=False),
    )
    return bronze.with_columns(day.alias("partition_date"))


def _flights(
    bronze: pl.DataFrame, airports: pl.DataFrame, airlines: pl.DataFrame, planes: pl.DataFrame
) -> pl.DataFrame:
    return transforms.type_flights(_own_day(bronze), airports, airlines, planes)


def _weather(bronze: pl.DataFrame, airports: pl.DataFrame) -> pl.DataFrame:
    # airports is not read: asking for it orders this step after the airport zones its
    # weather.obs_hour_local.matches_utc rule queries (the daily asset says so with `after`).
    del airports
    return transforms.type_weather(_own_day(bronze))


def definitions() -> dg.Definitions:
    bronze = [
        bronze_asset("aviation", name, description=f"{name}, the whole year as one file")
        for name in ("flights", "weather", "airports", "airlines", "planes")
    ]
    silver = [
        silver_asset(
            "aviation.silver.airports",
            inputs={"bronze": f"{BRONZE}/airports"},
            build=transforms.type_airports,
        ),
        silver_asset(
            "aviation.silver.airlines",
            inputs={"bronze": f"{BRONZE}/airlines"},
            build=transforms.type_airlines,
        ),
        silver_asset(
            "aviation.silver.planes",
            inputs={"bronze": f"{BRONZE}/planes"},
            build=transforms.type_planes,
        ),
        silver_asset(
            "aviation.silver.weather",
            inputs={"bronze": f"{BRONZE}/weather", "airports": f"{SILVER}/airports"},
            build=_weather,
        ),
        silver_asset(
            "aviation.silver.flights",
            inputs={
                "bronze": f"{BRONZE}/flights",
                "airports": f"{SILVER}/airports",
                "airlines": f"{SILVER}/airlines",
                "planes": f"{SILVER}/planes",
            },
            build=_flights,
        ),
    ]
    gold = domain_dbt_assets("aviation", None)
    return apply_platform_policy(
        dg.Definitions(assets=[*bronze, *silver, gold]), resources=default_resources()
    )
