"""The commerce domain's partitioning: one partition per delivery day."""

from data_products.lib.partitions import daily

DAILY = daily("2026-01-01")
"""Daily partitions from the first delivery; shared by bronze, silver and gold."""
