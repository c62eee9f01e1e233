"""Aviation bronze: the daily drops and the reference snapshots, as delivered (all text)."""

from assets.aviation.partitions import DAILY
from data_products.lib.bronze import bronze_asset

flights = bronze_asset(
    "aviation",
    "flights",
    partitions_def=DAILY,
    description=(
        "Departures from EWR, JFK and LGA as delivered in the daily drop (by local departure "
        "day): local HHMM clock times, delays in minutes, NA for missing values."
    ),
)
weather = bronze_asset(
    "aviation",
    "weather",
    partitions_def=DAILY,
    description="Hourly weather at the three NYC airports as delivered, by local observation day.",
)
airports = bronze_asset(
    "aviation",
    "airports",
    description="The airport reference snapshot as delivered: FAA code, position, time zone.",
)
airlines = bronze_asset(
    "aviation", "airlines", description="The airline reference snapshot as delivered."
)
planes = bronze_asset(
    "aviation",
    "planes",
    description="The aircraft registry snapshot as delivered (FAA registry, by tail number).",
)
