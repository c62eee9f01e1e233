"""The aviation domain's partitioning: one partition per departure day (local date at the
origin), for the 365 days of 2013 the source covers."""

from data_products.lib.partitions import daily

DAILY = daily("2013-01-01", "2014-01-01")
"""2013-01-01 … 2013-12-31: the source has no other days, so the set is closed."""
