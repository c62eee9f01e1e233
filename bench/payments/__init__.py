"""Payments benchmarks (``python -m bench.payments``):

- ``stream``: sustained events per second through producer → event log → sensor → exactly-once
  micro-batch runs → gold window features, for a fixed duration; latency from event time to the
  commit that made the event's features visible (p50/p95 over every event);
- ``windows``: the window-feature job alone over N events (default 10 million), the platform's
  incremental code path against the same features in one hand-written DuckDB query, with an
  equality check of the two results.
"""
