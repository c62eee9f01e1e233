"""The commerce benchmark: the same bronze → silver → gold work, with checks, run three ways.

``python -m bench.commerce [--rows-per-day 1000000] [--days 7] [--home DIR]`` generates seeded
commerce drops once (outside the timed region), then runs, each in its own subprocess so peak
memory is measured per implementation, on the same input files and into its own output:

1. ``platform``: the project's assets, one single-run backfill of the ``commerce`` group through
   ``data_products.cli.runs.materialize_slice`` on a real Dagster instance, lineage on;
2. ``duckdb``: the same transforms as hand-written DuckDB SQL on one connection (the practical
   limit of this hardware);
3. ``pandas``: the straightforward pandas implementation a typical user writes.

A correctness guard (not timed) compares the three on silver row counts, quarantined rows and
daily revenue, and the run exits non-zero if they disagree. Results go to stdout and to
``<home>/bench/commerce.json``.
"""
