"""Aviation silver: typed, UTC-converted, contract-governed tables (``contracts/aviation``).

Typing lives in ``transforms`` (pure polars, tested on the real data); splitting, writing and
checking is the platform's (``data_products.lib.silver``): the reference snapshots as unpartitioned
steps, weather as a daily step, and flights as a daily step that also reads the airport zones and
the reference tables whole (``references``).
"""

from assets.aviation import transforms
from assets.aviation.partitions import DAILY
from data_products.lib.silver import silver_asset

BRONZE = "aviation/bronze"
SILVER = "aviation/silver"

airports = silver_asset(
    "aviation.silver.airports",
    inputs={"bronze": f"{BRONZE}/airports"},
    build=transforms.type_airports,
    column_lineage={"alt_ft": [("bronze", "alt")], "utc_offset_h": [("bronze", "tz")]},
)
airlines = silver_asset(
    "aviation.silver.airlines",
    inputs={"bronze": f"{BRONZE}/airlines"},
    build=transforms.type_airlines,
)
planes = silver_asset(
    "aviation.silver.planes",
    inputs={"bronze": f"{BRONZE}/planes"},
    build=transforms.type_planes,
    column_lineage={
        "year_built": [("bronze", "year")],
        "speed_mph": [("bronze", "speed")],
        "aircraft_type": [("bronze", "type")],
        "engine_type": [("bronze", "engine")],
    },
)

weather = silver_asset(
    "aviation.silver.weather",
    inputs={"bronze": f"{BRONZE}/weather"},
    build=transforms.type_weather,
    partitions_def=DAILY,
    after=[f"{SILVER}/airports"],  # weather.obs_hour_local.matches_utc queries airport zones
    column_lineage={
        "obs_date_local": [("bronze", "year"), ("bronze", "month"), ("bronze", "day")],
        "obs_hour_local": [("bronze", "hour")],
        **{
            typed: [("bronze", source)]
            for source, (typed, _) in transforms.WEATHER_MEASURES.items()
        },
    },
)

_DEPARTURE = [("bronze", "year"), ("bronze", "month"), ("bronze", "day")]
_ZONES = [("airports", "tzone")]
flights = silver_asset(
    "aviation.silver.flights",
    inputs={"bronze": f"{BRONZE}/flights"},
    references={
        "airports": f"{SILVER}/airports",
        "airlines": f"{SILVER}/airlines",
        "planes": f"{SILVER}/planes",
    },
    build=transforms.type_flights,
    partitions_def=DAILY,
    column_lineage={
        "flight_date": _DEPARTURE,
        "sched_dep_local": [*_DEPARTURE, ("bronze", "sched_dep_time")],
        "sched_dep_utc": [*_DEPARTURE, ("bronze", "sched_dep_time"), *_ZONES],
        "dep_local": [*_DEPARTURE, ("bronze", "sched_dep_time"), ("bronze", "dep_delay")],
        "dep_utc": [*_DEPARTURE, ("bronze", "sched_dep_time"), ("bronze", "dep_delay"), *_ZONES],
        "sched_arr_local": [*_DEPARTURE, ("bronze", "sched_arr_time")],
        "sched_arr_utc": [*_DEPARTURE, ("bronze", "sched_arr_time"), *_ZONES],
        "arr_local": [*_DEPARTURE, ("bronze", "arr_time")],
        "arr_utc": [*_DEPARTURE, ("bronze", "arr_time"), *_ZONES],
        "sched_dep_hour": [("bronze", "sched_dep_time")],
        "dep_delay_min": [("bronze", "dep_delay")],
        "arr_delay_min": [("bronze", "arr_delay")],
        "air_time_min": [("bronze", "air_time")],
        "distance_mi": [("bronze", "distance")],
        "is_cancelled": [("bronze", "dep_time")],
        "is_diverted": [("bronze", "dep_time"), ("bronze", "arr_delay")],
    },
)
