"""Names and reference data the payments stream, its rules and its simulator share."""

from __future__ import annotations

DOMAIN = "payments"
TOPIC = "payments_transactions"
CONSUMER = "payments_stream"
PARTITIONS = 4
ALLOWED_LATENESS_S = 120
"""Watermark: an event is admitted while its event time is at most this far behind the stream
time of its partition; later events go to ``payments/silver/late_events``."""
MAX_BATCH_RECORDS = 800_000
"""Backpressure: one run never takes more than this (override: DATA_PRODUCTS_PAYMENTS_STREAM_
MAX_BATCH); DATA_PRODUCTS_PAYMENTS_STREAM_MAX_RATE caps how fast a backlog drains. A run takes
whatever arrived since the last one, up to this: large enough that a backlog is drained in runs
whose fixed cost (about 1-2 CPU s: checks, run events, the checkpoint at close) is spread over
many records. A consumer that keeps up takes smaller batches: what arrived during the last run."""

WINDOWS: tuple[tuple[str, int], ...] = (("1m", 60), ("5m", 300), ("1h", 3600))
HISTORY_MIN_EVENTS = 3
"""A z-score needs at least this many earlier events of the card in the hour before."""

# country, currency, latitude, longitude, units of currency per USD (rough: magnitudes only)
COUNTRIES: tuple[tuple[str, str, float, float, float], ...] = (
    ("US", "USD", 39.8, -98.6, 1.0),
    ("CA", "CAD", 56.1, -106.3, 1.35),
    ("GB", "GBP", 54.0, -2.0, 0.8),
    ("FR", "EUR", 46.2, 2.2, 0.92),
    ("DE", "EUR", 51.2, 10.4, 0.92),
    ("ES", "EUR", 40.5, -3.7, 0.92),
    ("NL", "EUR", 52.1, 5.3, 0.92),
    ("JP", "JPY", 36.2, 138.3, 150.0),
    ("AU", "AUD", -25.3, 133.8, 1.5),
    ("BR", "BRL", -14.2, -51.9, 5.0),
    ("IN", "INR", 20.6, 79.0, 83.0),
    ("SG", "SGD", 1.35, 103.8, 1.35),
)
