"""The correctness guard: the three implementations must produce the same key outputs.

Read after the timed runs, from what each implementation *persisted* (the platform's and DuckDB's
warehouse files, pandas' parquet files), through one DuckDB reader, so a table that was computed
but never written counts as missing. Required metrics fail the benchmark when they disagree:
bronze rows, silver published and quarantined rows per dataset, and per day the daily revenue
(to the cent) and order count. Informational metrics (quarantine by rule, gold row counts,
running total and 7-day average) are printed when they differ, with the generator's ground truth
as a fourth opinion.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from bench.commerce.layout import DATASETS, GOLD, SILVER, BenchLayout
from data_products.lib.keys import validate_identifier

CENT = 0.01 + 1e-9
Value = float | int | None


@dataclass
class KeyOutputs:
    """The figures one implementation is judged on (metric name → value)."""

    required: dict[str, Value] = field(default_factory=dict)
    info: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    metric: str
    values: dict[str, Value]  # implementation (and "truth") → value
    agree: bool
    required: bool
    truth_agrees: bool | None


def _connect_outputs(layout: BenchLayout, implementation: str) -> duckdb.DuckDBPyConnection:
    warehouse = layout.warehouse(implementation)
    if warehouse.exists():
        return duckdb.connect(str(warehouse), read_only=True)
    con = duckdb.connect()
    folder = layout.parquet_dir(implementation)
    for path in sorted(folder.glob("*.parquet")):
        schema, table = path.stem.split(".", 1)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        # Names come from our own file names (validated below); the path is a quoted literal
        # because DDL cannot take prepared parameters.
        validate_identifier(schema, what="schema")
        validate_identifier(table, what="table")
        literal = "'" + str(path).replace("'", "''") + "'"
        con.execute(f"CREATE VIEW {schema}.{table} AS SELECT * FROM read_parquet({literal})")
    return con


def key_outputs(layout: BenchLayout, implementation: str) -> KeyOutputs:
    """Key outputs of one implementation; a missing table raises (the run did not finish)."""
    outputs = KeyOutputs()
    with _connect_outputs(layout, implementation) as con:

        def count(table: str) -> int:
            row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            return int(row[0]) if row else 0

        for dataset in DATASETS:
            outputs.required[f"bronze rows {dataset}"] = count(f"commerce_bronze.{dataset}")
        for dataset in SILVER:
            outputs.required[f"silver published {dataset}"] = count(f"commerce_silver.{dataset}")
            outputs.required[f"silver quarantined {dataset}"] = count(
                f"commerce_silver.{dataset}_quarantine"
            )
            for rule, n in con.execute(
                f"SELECT rule_id, count(*) FROM commerce_silver.{dataset}_quarantine GROUP BY 1"
            ).fetchall():
                outputs.info[f"quarantined by rule {rule}"] = int(n)
        for name in GOLD:
            outputs.info[f"gold rows {name}"] = count(f"commerce_gold.{name}")
        for day, revenue, orders, revenue_orders, cumulative, average in con.execute(
            "SELECT CAST(date_day AS DATE), revenue_usd, orders, revenue_orders, "
            "cumulative_revenue_usd, revenue_7d_avg_usd FROM commerce_gold.daily_revenue "
            "ORDER BY 1"
        ).fetchall():
            outputs.required[f"daily_revenue {day} revenue_usd"] = float(revenue)
            outputs.required[f"daily_revenue {day} orders"] = int(orders)
            outputs.info[f"daily_revenue {day} revenue_orders"] = int(revenue_orders)
            outputs.info[f"daily_revenue {day} cumulative_revenue_usd"] = float(cumulative)
            outputs.info[f"daily_revenue {day} revenue_7d_avg_usd"] = float(average)
    return outputs


def truth_outputs(truth_root: Path) -> KeyOutputs:
    """The same figures from the generator's ground truth (what silver must publish)."""
    folder = truth_root / "commerce"
    outputs = KeyOutputs()
    for dataset in SILVER:
        outputs.required[f"silver published {dataset}"] = (
            pl.scan_parquet(folder / f"{dataset}.parquet").select(pl.len()).collect().item()
        )
    quarantine = pl.read_parquet(folder / "quarantine.parquet")
    for dataset in SILVER:
        outputs.required[f"silver quarantined {dataset}"] = quarantine.filter(
            pl.col("dataset") == dataset
        ).height
    for rule, n in quarantine.group_by("rule_id").len().iter_rows():
        outputs.info[f"quarantined by rule {rule}"] = int(n)
    orders = pl.read_parquet(folder / "orders.parquet")
    per_day = (
        orders.group_by("order_date")
        .agg(
            orders=pl.len(),
            revenue=pl.col("order_total_usd")
            .filter(pl.col("status").is_in(["placed", "shipped"]))
            .sum(),
        )
        .sort("order_date")
    )
    for day, n, revenue in per_day.iter_rows():
        outputs.required[f"daily_revenue {day} revenue_usd"] = round(float(revenue), 2)
        outputs.required[f"daily_revenue {day} orders"] = int(n)
    return outputs


def _close(a: Value, b: Value, metric: str) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    tolerance = CENT if metric.endswith("_usd") else 1e-9
    return math.isclose(float(a), float(b), rel_tol=0, abs_tol=tolerance)


def compare(outputs: Mapping[str, KeyOutputs | None], truth: KeyOutputs | None) -> list[Comparison]:
    """One row per metric any implementation reported, required metrics first. An
    implementation without outputs (``None``: it failed) disagrees with everyone."""
    rows: list[Comparison] = []
    for required in (True, False):
        metrics: dict[str, None] = {}
        for out in outputs.values():
            if out is not None:
                metrics |= dict.fromkeys((out.required if required else out.info).keys())
        for metric in sorted(metrics, key=_metric_order):
            values = {
                name: None if out is None else (out.required if required else out.info).get(metric)
                for name, out in outputs.items()
            }
            present = list(values.values())
            agree = all(_close(present[0], v, metric) for v in present[1:])
            truth_value: Value = None
            truth_agrees = None
            if truth is not None:
                source = truth.required if metric in truth.required else truth.info
                if metric in source:
                    truth_value = source[metric]
                    truth_agrees = all(_close(truth_value, v, metric) for v in present)
            row_values = dict(values)
            if truth_agrees is not None:
                row_values["truth"] = truth_value
            rows.append(Comparison(metric, row_values, agree, required, truth_agrees))
    return rows


def _metric_order(metric: str) -> tuple[int, str]:
    prefixes = ("bronze", "silver published", "silver quarantined", "daily_revenue")
    for i, prefix in enumerate(prefixes):
        if metric.startswith(prefix):
            return i, metric
    return len(prefixes), metric


def passed(rows: Iterable[Comparison]) -> bool:
    return all(r.agree for r in rows if r.required)


def render(rows: list[Comparison], implementations: list[str]) -> str:
    """The ✓/✗ table: every required metric, and informational ones only where they differ."""
    columns = [*implementations, "truth"]
    width = max([len(r.metric) for r in rows] + [10])
    lines = [
        "Correctness guard (not timed): implementations must agree (money to the cent)",
        f"  {'metric':<{width}} " + " ".join(f"{c:>14}" for c in columns) + "  ",
    ]
    info_agreeing = 0
    for row in rows:
        if not row.required and row.agree:
            info_agreeing += 1
            continue
        cells = " ".join(f"{_cell(row.values.get(c)):>14}" for c in columns)
        mark = "✓" if row.agree else "✗"
        note = ""
        if row.truth_agrees is False:
            note = " (≠ ground truth)"
        if not row.required:
            note += " (info)"
        lines.append(f"{mark} {row.metric:<{width}} {cells}{note}")
    lines.append(
        f"  + {info_agreeing} informational metrics agree (quarantine by rule, gold rows, …)"
    )
    return "\n".join(lines)


def _cell(value: Value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}"
