"""Implementation 3: the straightforward pandas version a typical user writes.

``pd.read_csv(dtype=str)`` per file, per-value Python functions with regular expressions for the
partner's number formats (``Series.map``), ``pd.to_datetime`` per date format, ``groupby`` and
``merge`` for headers, deduplication and the marts, parquet files as output
(``runs/pandas/tables/<schema>.<table>.parquet``). It is written to be *correct* (the same
outputs as the platform, which the correctness guard checks), not to be clever about speed:
that is the point of comparing with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.commerce import model as m
from bench.commerce.clock import Clock, Progress
from bench.commerce.gold_tests import GOLD_TESTS, failing_rows_pandas
from bench.commerce.layout import DATASETS, BenchLayout, BenchRange, drop_files

Rules = dict[str, pd.Series]

_NOISE = re.compile(m.NUMBER_NOISE)
_FORMATS = [
    (re.compile(m.PLAIN), lambda c: c),
    (re.compile(m.US_GROUPED), lambda c: c.replace(",", "")),
    (re.compile(m.EU_GROUPED), lambda c: c.replace(".", "").replace(",", ".", 1)),
    (re.compile(m.EU_DECIMAL), lambda c: c.replace(",", ".", 1)),
]


def parse_number(text: object) -> float:
    """One delivered number (any of the partner's formats) as a float; NaN if it is not one."""
    if not isinstance(text, str):
        return math.nan
    compact = _NOISE.sub("", text)
    for pattern, canonical in _FORMATS:
        if pattern.fullmatch(compact):
            return float(canonical(compact))
    return math.nan


def parse_integer(text: object) -> float:
    """Whole numbers, also written ``2.0``; NaN for ``1.5`` or text (a type failure)."""
    number = parse_number(text)
    if math.isnan(number) or number != math.floor(number) or abs(number) > m.INT32_MAX:
        return math.nan
    return number


def clean_text(series: pd.Series) -> pd.Series:
    stripped = series.str.strip()
    return stripped.where(stripped != "")


def is_empty(series: pd.Series) -> pd.Series:
    return clean_text(series).isna()


def _try_formats(text: pd.Series, formats: tuple[str, ...]) -> pd.Series:
    """The first format that parses each value; each pass only looks at what is still open."""
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for fmt in formats:
        open_ = parsed.isna() & text.notna()
        if not open_.any():
            break
        parsed[open_] = pd.to_datetime(text[open_], format=fmt, errors="coerce")
    return parsed


def parse_timestamp(series: pd.Series) -> pd.Series:
    return _try_formats(series.str.strip(), (*m.TIMESTAMP_FORMATS, *m.DATE_FORMATS))


def parse_date(series: pd.Series) -> pd.Series:
    parsed = _try_formats(series.str.strip(), m.DATE_FORMATS)
    return parsed.fillna(parse_timestamp(series).dt.normalize())


def normalise_currency(series: pd.Series) -> pd.Series:
    return clean_text(series).str.upper().replace(m.CURRENCY_SYMBOLS)


def round_cents(series: pd.Series) -> pd.Series:
    # numpy rounds half to even on the scaled value, as polars does.
    return series.round(2)


def fails(condition: pd.Series) -> pd.Series:
    """A rule condition as a plain bool Series (NA counts as passing, as in the contracts)."""
    return condition.fillna(False).astype(bool)


def mismatch(series: pd.Series, pattern: str) -> pd.Series:
    """Values that do not match ``pattern`` (missing values pass: ``required`` covers them)."""
    return ~series.str.fullmatch(pattern, na=True).astype(bool)


class _Writer:
    """Tables as ``<schema>.<table>.parquet``, the pandas stand-in for a warehouse."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, schema: str, table: str, frame: pd.DataFrame) -> None:
        frame.to_parquet(self.folder / f"{schema}.{table}.parquet", index=False)


def run(layout: BenchLayout, bench_range: BenchRange, progress: Progress) -> dict[str, Any]:
    clock = Clock(progress)
    out = _Writer(layout.parquet_dir("pandas"))
    with clock.phase("bronze"):
        bronze = {ds: _read_bronze(layout, ds, bench_range) for ds in DATASETS}
        for dataset, frame in bronze.items():
            out.write("commerce_bronze", dataset, frame)
    with clock.phase("silver"):
        silver = _silver(bronze)
        for dataset, split in silver.items():
            out.write("commerce_silver", dataset, split.published)
            out.write("commerce_silver", f"{dataset}_quarantine", split.quarantined)
    rows_in = {
        "fx_rates": len(bronze["fx_rates"]),
        "customers": len(bronze["customers"]),
        "products": len(bronze["products"]),
        "order_lines": len(bronze["orders"]),
        "orders": silver["orders"].rows_in,
    }
    del bronze
    with clock.phase("gold"):
        gold = _gold(silver)
        for name, frame in gold.items():
            out.write("commerce_gold", name, frame)
    with clock.phase("checks"):
        checks = _checks(silver, gold, rows_in, bench_range)
    failed = [c["name"] for c in checks if not c["passed"]]
    gate = [c["name"] for c in checks if not c["passed"] and c["severity"] == "error"]
    return {
        "success": not gate,
        "phases": clock.phases,
        "checks_s": clock.phases["checks"],
        "checks": {"evaluated": len(checks), "failed": failed, "gate_failures": gate},
    }


# --------------------------------------------------------------------------------------------
# Bronze


def _read_bronze(layout: BenchLayout, dataset: str, bench_range: BenchRange) -> pd.DataFrame:
    frames = []
    for key, path in drop_files(layout.landing, dataset, bench_range.keys):
        # keep_default_na=False: "NA" is Namibia, not a missing value; only empty is missing.
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], encoding_errors="replace"
        )
        frame["partition_date"] = pd.Timestamp(key)
        frame["_source_file"] = path.relative_to(layout.landing).as_posix()
        frame["_source_line"] = np.arange(2, len(frame) + 2, dtype=np.int64)
        frames.append(frame)
    bronze = pd.concat(frames, ignore_index=True)
    delivered = [c for c in bronze.columns if not c.startswith("_") and c != "partition_date"]
    bronze["_ingested_at"] = pd.Timestamp.now()
    bronze["_row_hash"] = pd.util.hash_pandas_object(bronze[delivered], index=False).astype(str)
    return bronze[[*delivered, *m.LINEAGE, "_ingested_at", "_row_hash"]]


def _delivered(bronze: pd.DataFrame) -> list[str]:
    return [c for c in bronze.columns if not c.startswith("_") and c != "partition_date"]


def _raw(bronze: pd.DataFrame, dataset: str, column: str) -> pd.Series:
    """The delivered text of a model column under any of its names (``unit_price``/``price``)."""
    names = [column, *(a for a, t in m.ALIASES.get(dataset, {}).items() if t == column)]
    present = [bronze[n] for n in names if n in bronze.columns]
    if not present:
        return pd.Series(np.nan, index=bronze.index, dtype=object)
    text = present[0]
    for other in present[1:]:
        text = text.fillna(other)
    return text


def _json_records(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """``{"col":"value",...}`` of each row's non-null delivered values."""
    records = frame[columns].to_dict("records")
    return pd.Series(
        [
            json.dumps(
                {k: v for k, v in r.items() if isinstance(v, str)},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for r in records
        ],
        index=frame.index,
        dtype=object,
    )


def _extra_columns(bronze: pd.DataFrame, dataset: str) -> pd.Series:
    model = set(m.DELIVERED[dataset]) | set(m.ALIASES.get(dataset, {}))
    extras = [c for c in _delivered(bronze) if c not in model]
    result = pd.Series(None, index=bronze.index, dtype=object)
    if not extras:
        return result
    carrying = bronze[extras].notna().any(axis=1)
    result[carrying] = _json_records(bronze.loc[carrying], extras)
    return result


# --------------------------------------------------------------------------------------------
# Silver


class _Split:
    def __init__(self, published: pd.DataFrame, quarantined: pd.DataFrame, rows_in: int) -> None:
        self.published = published
        self.quarantined = quarantined
        self.rows_in = rows_in
        self.rule_failures: dict[str, int] = {}


_QUARANTINE_COLUMNS = [
    "partition_date", "rule_id", "failed_rules", "reason", "_source_file", "_source_line",
    "raw_record",
]  # fmt: skip


def _split(
    dataset: str,
    typed: pd.DataFrame,
    rules: Rules,
    record: Callable[[pd.DataFrame], pd.Series],
) -> _Split:
    """Published rows and quarantine rows: first failing error rule, then primary-key dedup."""
    error_ids = m.error_rules(dataset)
    rule_id = pd.Series(
        np.select([rules[r].to_numpy() for r in error_ids], error_ids, default=""),
        index=typed.index,
    )
    passing = typed[rule_id == ""].sort_values(["_source_file", "_source_line"], kind="stable")
    key = list(m.PRIMARY_KEYS[dataset])
    duplicated = passing.duplicated(subset=key, keep="first")
    kept, duplicates = passing[~duplicated], passing[duplicated]
    columns = [c for c in m.PUBLISHED_COLUMNS[dataset] if c != "partition_date"]
    published = kept[["partition_date", *columns, "_source_file", "_source_line", "_extra_columns"]]

    failing = pd.DataFrame({r.id: rules[r.id] for r in m.ROW_RULES[dataset]})
    parts = [
        _quarantine_rejected(typed[rule_id != ""], rule_id, failing, record),
        _quarantine_duplicates(dataset, kept, duplicates, failing, record),
    ]
    quarantined = pd.concat(
        [p for p in parts if len(p)] or [pd.DataFrame(columns=_QUARANTINE_COLUMNS)]
    )
    quarantined.insert(3, "severity", "error")
    quarantined["_quarantined_at"] = pd.Timestamp.now()
    result = _Split(
        published.reset_index(drop=True), quarantined.reset_index(drop=True), len(typed)
    )
    result.rule_failures = {r: int(failing[r].sum()) for r in failing.columns}
    result.rule_failures[m.duplicate_rule(dataset)] = len(duplicates)
    return result


def _location(rows: pd.DataFrame) -> pd.Series:
    return " (" + rows["_source_file"] + " line " + rows["_source_line"].astype(str) + ")"


def _quarantine_rejected(
    rejected: pd.DataFrame,
    rule_id: pd.Series,
    failing: pd.DataFrame,
    record: Callable[[pd.DataFrame], pd.Series],
) -> pd.DataFrame:
    """Rows that break an error rule, filed under the first one (every failing rule listed)."""
    if rejected.empty:
        return pd.DataFrame(columns=_QUARANTINE_COLUMNS)
    ids = rule_id[rejected.index]
    rules = list(failing.columns)
    return pd.DataFrame(
        {
            "partition_date": rejected["partition_date"],
            "rule_id": ids,
            "failed_rules": [
                [r for r in rules if row[r]]
                for row in failing.loc[rejected.index].to_dict("records")
            ],
            "reason": ids + ": rejected" + _location(rejected),
            "_source_file": rejected["_source_file"],
            "_source_line": rejected["_source_line"],
            "raw_record": record(rejected),
        }
    )


def _quarantine_duplicates(
    dataset: str,
    kept: pd.DataFrame,
    duplicates: pd.DataFrame,
    failing: pd.DataFrame,
    record: Callable[[pd.DataFrame], pd.Series],
) -> pd.DataFrame:
    """Later copies of a published key, with the file and line of the copy that was kept."""
    if duplicates.empty:
        return pd.DataFrame(columns=_QUARANTINE_COLUMNS)
    rule = m.duplicate_rule(dataset)
    key = list(m.PRIMARY_KEYS[dataset])
    warnings = [r.id for r in m.ROW_RULES[dataset] if r.severity == "warning"]
    kept_rows = kept[[*key, "_source_file", "_source_line"]].rename(
        columns={"_source_file": "__kept_file", "_source_line": "__kept_line"}
    )
    found = duplicates.merge(kept_rows, on=key, how="left")
    key_text = ", ".join(f"{c}={{{c}}}" for c in key)
    reasons = pd.Series(
        [
            f"{rule}: duplicate of {key_text.format(**row)} kept from "
            f"{row['__kept_file']} line {row['__kept_line']}"
            for row in found.to_dict("records")
        ],
        index=duplicates.index,
    )
    return pd.DataFrame(
        {
            "partition_date": duplicates["partition_date"],
            "rule_id": rule,
            "failed_rules": [
                [rule, *[r for r in warnings if row[r]]]
                for row in failing.loc[duplicates.index].to_dict("records")
            ],
            "reason": reasons + _location(duplicates),
            "_source_file": duplicates["_source_file"],
            "_source_line": duplicates["_source_line"],
            "raw_record": record(duplicates),
        }
    )


def _record_of(bronze: pd.DataFrame) -> Callable[[pd.DataFrame], pd.Series]:
    """Raw-record JSON of the bronze rows behind typed rows (typed keeps bronze's index)."""
    delivered = _delivered(bronze)
    return lambda rows: _json_records(bronze.loc[rows.index], delivered)


def _lineage(bronze: pd.DataFrame) -> pd.DataFrame:
    return bronze[list(m.LINEAGE)].copy()


def _silver(bronze: dict[str, pd.DataFrame]) -> dict[str, _Split]:
    fx = _split_fx(bronze["fx_rates"])
    rates = fx.published[["partition_date", "currency", "usd_per_unit"]].rename(
        columns={"usd_per_unit": "rate"}
    )
    rates = rates[rates["currency"].str.fullmatch(r"[A-Z]{3}") & (rates["rate"] > 0)]
    customers = _split_customers(bronze["customers"])
    products = _split_products(bronze["products"], rates)
    lines_typed = _typed_lines(bronze["orders"], rates)
    order_lines = _split(
        "order_lines", lines_typed, _line_rules(lines_typed), _record_of(bronze["orders"])
    )
    orders = _split_orders(bronze["orders"], lines_typed, order_lines)
    return {
        "fx_rates": fx,
        "customers": customers,
        "products": products,
        "order_lines": order_lines,
        "orders": orders,
    }


def _with_rate(typed: pd.DataFrame, rates: pd.DataFrame) -> pd.Series:
    joined = typed[["partition_date", "currency"]].merge(
        rates, on=["partition_date", "currency"], how="left"
    )
    rate = pd.Series(joined["rate"].to_numpy(), index=typed.index)
    return rate.mask(typed["currency"] == "USD", 1.0)


def _split_fx(bronze: pd.DataFrame) -> _Split:
    t = _lineage(bronze)
    raw_currency = _raw(bronze, "fx_rates", "currency")
    raw_rate = _raw(bronze, "fx_rates", "usd_per_unit")
    t["currency"] = normalise_currency(raw_currency)
    t["usd_per_unit"] = raw_rate.map(parse_number)
    t["_extra_columns"] = _extra_columns(bronze, "fx_rates")
    rules = {
        "fx_rates.currency.required": is_empty(raw_currency),
        "fx_rates.currency.pattern": mismatch(t["currency"], r"[A-Z]{3}"),
        "fx_rates.usd_per_unit.required": is_empty(raw_rate),
        "fx_rates.usd_per_unit.type": ~is_empty(raw_rate) & t["usd_per_unit"].isna(),
        "fx_rates.usd_per_unit.range": fails(t["usd_per_unit"] <= 0),
    }
    return _split("fx_rates", t, rules, _record_of(bronze))


def _split_customers(bronze: pd.DataFrame) -> _Split:
    t = _lineage(bronze)
    raw = {c: _raw(bronze, "customers", c) for c in m.DELIVERED["customers"]}
    t["customer_id"] = clean_text(raw["customer_id"])
    t["email"] = clean_text(raw["email"])
    t["full_name"] = clean_text(raw["full_name"])
    t["country"] = clean_text(raw["country"]).str.upper()
    t["segment"] = clean_text(raw["segment"]).str.lower()
    t["signup_date"] = parse_date(raw["signup_date"])
    t["updated_at"] = parse_timestamp(raw["updated_at"])
    t["_extra_columns"] = _extra_columns(bronze, "customers")
    rules = {
        "customers.customer_id.required": is_empty(raw["customer_id"]),
        "customers.customer_id.pattern": mismatch(t["customer_id"], r"C\d{6}"),
        "customers.email.pattern": mismatch(t["email"], r"[^@\s]+@[^@\s]+\.[^@\s]+"),
        "customers.full_name.encoding": fails(
            raw["full_name"].str.contains(m.REPLACEMENT_CHARACTER, regex=False)
        ),
        "customers.country.pattern": mismatch(t["country"], r"[A-Z]{2}"),
        "customers.segment.valid_values": t["segment"].notna() & ~t["segment"].isin(m.SEGMENTS),
        "customers.signup_date.type": ~is_empty(raw["signup_date"]) & t["signup_date"].isna(),
        "customers.updated_at.required": is_empty(raw["updated_at"]),
        "customers.updated_at.type": ~is_empty(raw["updated_at"]) & t["updated_at"].isna(),
    }
    return _split("customers", t, rules, _record_of(bronze))


def _split_products(bronze: pd.DataFrame, rates: pd.DataFrame) -> _Split:
    t = _lineage(bronze)
    raw = {c: _raw(bronze, "products", c) for c in m.DELIVERED["products"]}
    t["product_id"] = clean_text(raw["product_id"])
    t["product_name"] = clean_text(raw["product_name"])
    t["category"] = clean_text(raw["category"])
    t["currency"] = normalise_currency(raw["currency"])
    rate = _with_rate(t, rates)
    t["list_price_usd"] = round_cents(raw["list_price"].map(parse_number) * rate)
    t["_extra_columns"] = _extra_columns(bronze, "products")
    price = t["list_price_usd"]
    rules = {
        "products.product_id.required": is_empty(raw["product_id"]),
        "products.product_id.pattern": mismatch(t["product_id"], r"P\d{5}"),
        "products.product_name.required": is_empty(raw["product_name"]),
        "products.list_price_usd.known_rate": rate.isna(),
        "products.list_price_usd.required": is_empty(raw["list_price"]),
        "products.list_price_usd.type": ~is_empty(raw["list_price"]) & price.isna(),
        "products.list_price_usd.range": fails((price <= 0) | (price > 10000)),
    }
    return _split("products", t, rules, _record_of(bronze))


def _typed_lines(bronze: pd.DataFrame, rates: pd.DataFrame) -> pd.DataFrame:
    """Every delivered order line typed, with its raw texts for the rules (``*__raw``)."""
    t = _lineage(bronze)
    for column in (
        "order_id",
        "line_no",
        "order_ts",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "currency",
        "status",
    ):
        t[f"{column}__raw"] = _raw(bronze, "orders", column)
    t["order_id"] = clean_text(t["order_id__raw"])
    t["line_no"] = t["line_no__raw"].map(parse_integer).astype("Int64")
    t["product_id"] = clean_text(t["product_id__raw"])
    t["quantity"] = t["quantity__raw"].map(parse_integer).astype("Int64")
    t["unit_price_local"] = t["unit_price__raw"].map(parse_number)
    t["currency"] = normalise_currency(t["currency__raw"])
    t["order_ts"] = parse_timestamp(t["order_ts__raw"])
    t["customer_id"] = clean_text(t["customer_id__raw"])
    t["status"] = clean_text(t["status__raw"]).str.lower()
    t["rate"] = _with_rate(t, rates)
    t["unit_price_usd"] = round_cents(t["unit_price_local"] * t["rate"])
    t["order_date"] = t["order_ts"].dt.normalize()
    t["line_amount_usd"] = round_cents(t["quantity"].astype("float64") * t["unit_price_usd"])
    t["_in_partition"] = (t["order_date"] == t["partition_date"]).fillna(False)
    t["_extra_columns"] = _extra_columns(bronze, "orders")
    return t


def _line_rules(t: pd.DataFrame) -> Rules:
    quantity, price = t["quantity"], t["unit_price_local"]
    return {
        "order_lines.order_id.required": is_empty(t["order_id__raw"]),
        "order_lines.order_id.pattern": mismatch(t["order_id"], r"O\d{9}"),
        "order_lines.line_no.required": is_empty(t["line_no__raw"]),
        "order_lines.line_no.type": ~is_empty(t["line_no__raw"]) & t["line_no"].isna(),
        "order_lines.line_no.range": fails(t["line_no"] < 1),
        "order_lines.product_id.required": is_empty(t["product_id__raw"]),
        "order_lines.quantity.required": is_empty(t["quantity__raw"]),
        "order_lines.quantity.type": ~is_empty(t["quantity__raw"]) & quantity.isna(),
        "order_lines.quantity.range": fails((quantity < 1) | (quantity > 100)),
        "order_lines.unit_price_local.required": is_empty(t["unit_price__raw"]),
        "order_lines.unit_price_local.type": ~is_empty(t["unit_price__raw"]) & price.isna(),
        "order_lines.unit_price_local.range": fails((price <= 0) | (price > 100_000)),
        "order_lines.order_ts.in_partition": ~t["_in_partition"].astype(bool),
        "order_lines.currency.known_rate": t["rate"].isna(),
    }


def _split_orders(bronze: pd.DataFrame, lines: pd.DataFrame, order_lines: _Split) -> _Split:
    """Headers from every delivered line: the first line's fields, the published lines' totals,
    and complete only when each delivered line has a published line with its key that day."""
    keys = ["partition_date", "order_id"]
    published = order_lines.published
    ordered = lines.sort_values(["partition_date", "_source_file", "_source_line"], kind="stable")
    headers = ordered.drop_duplicates(keys, keep="first")
    marked = ordered[[*keys, "line_no"]].merge(
        published[[*keys, "line_no"]].assign(_published=True),
        on=[*keys, "line_no"],
        how="left",
    )
    complete = (
        marked.assign(_published=marked["_published"].notna())
        .groupby(keys, dropna=False)["_published"]
        .all()
        .rename("_lines_complete")
    )
    totals = (
        published.assign(
            _local=published["quantity"].astype("float64") * published["unit_price_local"]
        )
        .groupby(keys)
        .agg(
            order_total_local=("_local", "sum"),
            order_total_usd=("line_amount_usd", "sum"),
            line_count=("line_no", "size"),
        )
    )
    totals["order_total_local"] = round_cents(totals["order_total_local"])
    totals["order_total_usd"] = round_cents(totals["order_total_usd"])
    t = headers.drop(columns=["line_no"]).set_index(keys)
    t = t.join(complete).join(totals).reset_index()
    t.index = headers.index  # keep the first line's bronze row, for the raw record
    t["line_count"] = t["line_count"].fillna(0).astype("int32")
    t["_in_partition"] = (t["order_date"] == t["partition_date"]).fillna(False)
    rules: Rules = {
        "orders.order_id.required": is_empty(t["order_id__raw"]),
        "orders.order_id.pattern": mismatch(t["order_id"], r"O\d{9}"),
        "orders.customer_id.required": is_empty(t["customer_id__raw"]),
        "orders.order_ts.required": is_empty(t["order_ts__raw"]),
        "orders.order_ts.type": ~is_empty(t["order_ts__raw"]) & t["order_ts"].isna(),
        "orders.order_ts.in_partition": ~t["_in_partition"].astype(bool),
        "orders.status.valid_values": t["status"].notna() & ~t["status"].isin(m.STATUSES),
        "orders.currency.valid_values": t["currency"].notna()
        & ~t["currency"].isin(m.ORDER_CURRENCIES),
        "orders.lines.complete": ~t["_lines_complete"].fillna(False).astype(bool),
    }
    return _split("orders", t, rules, _record_of(bronze))


# --------------------------------------------------------------------------------------------
# Gold


def _surrogate(values: pd.Series) -> pd.Series:
    return values.map(lambda v: int(hashlib.md5(v.encode()).hexdigest()[:15], 16))


def _gold(silver: dict[str, _Split]) -> dict[str, pd.DataFrame]:
    orders = silver["orders"].published.copy()
    orders["is_revenue"] = orders["status"].isin(m.REVENUE_STATUSES)
    lines = silver["order_lines"].published
    gold: dict[str, pd.DataFrame] = {}
    gold["dim_date"] = _dim_date(orders)
    gold["dim_customer"] = _dim_customer(silver["customers"].published)
    gold["dim_product"] = _dim_product(silver["products"].published)
    gold["fct_orders"] = _fct_orders(lines, orders, gold["dim_customer"], gold["dim_product"])
    gold["daily_revenue"] = _daily_revenue(orders, gold["dim_date"])
    gold["top_products_daily"] = _top_products(lines, orders, gold["dim_product"])
    gold["customer_sessions"] = _sessions(orders)
    gold["monthly_retention"] = _retention(orders)
    gold["rfm_segments"] = _rfm(orders)
    return gold


def _date_key(days: pd.Series) -> pd.Series:
    return days.dt.strftime("%Y%m%d").astype("int32")


def _dim_date(orders: pd.DataFrame) -> pd.DataFrame:
    days = pd.Series(pd.date_range(orders["order_date"].min(), orders["order_date"].max()))
    return pd.DataFrame(
        {
            "date_key": _date_key(days),
            "date_day": days,
            "year": days.dt.year.astype("int32"),
            "quarter": days.dt.quarter.astype("int32"),
            "month": days.dt.month.astype("int32"),
            "month_name": days.dt.month_name(),
            "month_start": days.dt.to_period("M").dt.start_time,
            "day_of_month": days.dt.day.astype("int32"),
            "iso_day_of_week": (days.dt.dayofweek + 1).astype("int32"),
            "day_name": days.dt.day_name(),
            "iso_week": days.dt.isocalendar().week.astype("int32"),
            "is_weekend": days.dt.dayofweek >= 5,
        }
    )


_BEGINNING = pd.Timestamp("1900-01-01")
_END = pd.Timestamp("9999-12-31")


def _dim_customer(customers: pd.DataFrame) -> pd.DataFrame:
    # Microsecond timestamps: the open end of a version is 9999-12-31, beyond nanoseconds' 2262.
    changed_at = customers["updated_at"].fillna(customers["partition_date"])
    changes = customers.assign(changed_at=changed_at.astype("datetime64[us]"))
    changes = changes.sort_values(
        ["partition_date", "_source_file", "_source_line"], ascending=False, kind="stable"
    ).drop_duplicates(["customer_id", "changed_at"], keep="first")
    changes = changes.sort_values(["customer_id", "changed_at"], kind="stable")
    previous = changes.groupby("customer_id")[["email", "country", "segment"]].shift()
    first = ~changes["customer_id"].duplicated()
    differs = pd.Series(False, index=changes.index)
    for column in ("email", "country", "segment"):
        now, before = changes[column], previous[column]
        differs |= ~((now == before) | (now.isna() & before.isna()))
    versions = changes[first | differs].copy()
    versions["version_number"] = versions.groupby("customer_id").cumcount().add(1).astype("int32")
    versions["next_version_at"] = versions.groupby("customer_id")["changed_at"].shift(-1)
    latest_signup = changes.drop_duplicates("customer_id", keep="last").set_index("customer_id")[
        "signup_date"
    ]
    known = pd.DataFrame(
        {
            "customer_sk": _surrogate(
                versions["customer_id"]
                + "|"
                + versions["changed_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
            ),
            "customer_id": versions["customer_id"],
            "email": versions["email"],
            "country": versions["country"],
            "segment": versions["segment"],
            "signup_date": versions["customer_id"].map(latest_signup),
            "version_number": versions["version_number"],
            "changed_at": versions["changed_at"],
            "valid_from": versions["changed_at"].where(versions["version_number"] > 1, _BEGINNING),
            "valid_to": versions["next_version_at"].fillna(_END),
            "is_current": versions["next_version_at"].isna(),
        }
    )
    unknown = pd.DataFrame(
        [
            {
                "customer_sk": -1,
                "customer_id": "unknown",
                "version_number": 0,
                "valid_from": _BEGINNING,
                "valid_to": _END,
                "is_current": True,
            }
        ]
    ).astype({"valid_from": "datetime64[us]", "valid_to": "datetime64[us]"})
    return pd.concat([known, unknown], ignore_index=True)


def _dim_product(products: pd.DataFrame) -> pd.DataFrame:
    latest_catalog = products["partition_date"].max()
    seen = products.groupby("product_id")["partition_date"].agg(["min", "max"])
    latest = products.sort_values(
        ["partition_date", "_source_file", "_source_line"], ascending=False, kind="stable"
    ).drop_duplicates("product_id", keep="first")
    known = pd.DataFrame(
        {
            "product_sk": _surrogate(latest["product_id"]),
            "product_id": latest["product_id"],
            "product_name": latest["product_name"],
            "category": latest["category"],
            "list_price_usd": latest["list_price_usd"],
            "first_seen_date": latest["product_id"].map(seen["min"]),
            "last_seen_date": latest["product_id"].map(seen["max"]),
        }
    )
    known["is_in_latest_catalog"] = known["last_seen_date"] == latest_catalog
    unknown = pd.DataFrame(
        [{"product_sk": -1, "product_id": "unknown", "is_in_latest_catalog": False}]
    )
    return pd.concat([known, unknown], ignore_index=True)


def _order_lines(lines: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    header = [
        "order_id",
        "customer_id",
        "order_ts",
        "order_date",
        "partition_date",
        "status",
        "is_revenue",
        "currency",
    ]
    return lines.drop(columns=["partition_date"]).merge(orders[header], on="order_id")


def _fct_orders(
    lines: pd.DataFrame, orders: pd.DataFrame, customers: pd.DataFrame, products: pd.DataFrame
) -> pd.DataFrame:
    facts = _order_lines(lines, orders).sort_values("order_ts", kind="stable")
    facts["_at"] = facts["order_ts"].astype("datetime64[us]")
    versions = customers[customers["customer_sk"] != -1].sort_values("valid_from")
    facts = pd.merge_asof(
        facts,
        # Int64: a float column (NaN where no version matches) would round 60-bit keys.
        versions[["customer_id", "valid_from", "valid_to", "customer_sk"]].astype(
            {"customer_sk": "Int64"}
        ),
        left_on="_at",
        right_on="valid_from",
        by="customer_id",
    )
    in_version = facts["_at"] < facts["valid_to"]
    product_sk = products[products["product_sk"] != -1].set_index("product_id")["product_sk"]
    return pd.DataFrame(
        {
            "order_line_id": facts["order_id"] + "-" + facts["line_no"].astype(str),
            "order_id": facts["order_id"],
            "line_no": facts["line_no"],
            "customer_sk": facts["customer_sk"].where(in_version).fillna(-1).astype("int64"),
            "product_sk": facts["product_id"].map(product_sk).fillna(-1).astype("int64"),
            "date_key": _date_key(facts["order_date"]),
            "customer_id": facts["customer_id"],
            "product_id": facts["product_id"],
            "order_ts": facts["order_ts"],
            "order_date": facts["order_date"],
            "partition_date": facts["partition_date"],
            "status": facts["status"],
            "is_revenue": facts["is_revenue"],
            "currency": facts["currency"],
            "quantity": facts["quantity"],
            "unit_price_usd": facts["unit_price_usd"],
            "line_amount_usd": facts["line_amount_usd"],
        }
    )


def _daily_revenue(orders: pd.DataFrame, dim_date: pd.DataFrame) -> pd.DataFrame:
    revenue = orders["order_total_usd"].where(orders["is_revenue"], 0.0)
    per_day = (
        orders.assign(_revenue=revenue)
        .groupby("order_date")
        .agg(
            orders=("order_id", "size"),
            revenue_orders=("is_revenue", "sum"),
            revenue_usd=("_revenue", "sum"),
        )
    )
    per_day["revenue_usd"] = per_day["revenue_usd"].round(2)
    days = dim_date.set_index("date_day")[["date_key"]].join(per_day).fillna(0)
    days = days.reset_index().rename(columns={"index": "date_day"})
    days["orders"] = days["orders"].astype("int64")
    days["revenue_orders"] = days["revenue_orders"].astype("int64")
    days["cumulative_revenue_usd"] = days["revenue_usd"].cumsum().round(2)
    days["revenue_7d_avg_usd"] = days["revenue_usd"].rolling(7, min_periods=1).mean()
    return days


def _top_products(
    lines: pd.DataFrame, orders: pd.DataFrame, products: pd.DataFrame
) -> pd.DataFrame:
    sold = _order_lines(lines, orders)
    sold = sold[sold["is_revenue"]]
    per_product = (
        sold.groupby(["order_date", "product_id"])
        .agg(
            revenue_usd=("line_amount_usd", "sum"),
            units_sold=("quantity", "sum"),
            orders=("order_id", "nunique"),
        )
        .reset_index()
    )
    per_product["revenue_usd"] = per_product["revenue_usd"].round(2)
    ranked = per_product.sort_values(
        ["order_date", "revenue_usd", "product_id"], ascending=[True, False, True]
    )
    ranked["product_rank"] = ranked.groupby("order_date").cumcount().add(1).astype("int32")
    top = ranked[ranked["product_rank"] <= 5]
    product_sk = products[products["product_sk"] != -1].set_index("product_id")["product_sk"]
    return pd.DataFrame(
        {
            "date_day": top["order_date"],
            "date_key": _date_key(top["order_date"]),
            "product_rank": top["product_rank"],
            "product_sk": top["product_id"].map(product_sk).fillna(-1).astype("int64"),
            "product_id": top["product_id"],
            "revenue_usd": top["revenue_usd"],
            "units_sold": top["units_sold"].astype("int64"),
            "orders": top["orders"].astype("int64"),
        }
    )


def _sessions(orders: pd.DataFrame) -> pd.DataFrame:
    ordered = orders.sort_values(["customer_id", "order_ts", "order_id"], kind="stable")
    previous = ordered.groupby("customer_id")["order_ts"].shift()
    gap = pd.Timedelta(minutes=m.SESSION_GAP_MINUTES)
    starts = previous.isna() | ((ordered["order_ts"] - previous) > gap)
    ordered = ordered.assign(
        session_number=starts.astype("int64").groupby(ordered["customer_id"]).cumsum(),
        _revenue=ordered["order_total_usd"].where(ordered["is_revenue"], 0.0),
    )
    sessions = (
        ordered.groupby(["customer_id", "session_number"])
        .agg(
            session_start=("order_ts", "min"),
            session_end=("order_ts", "max"),
            orders=("order_id", "size"),
            revenue_usd=("_revenue", "sum"),
        )
        .reset_index()
    )
    sessions["revenue_usd"] = sessions["revenue_usd"].round(2)
    sessions.insert(
        0, "session_id", sessions["customer_id"] + "-" + sessions["session_number"].astype(str)
    )
    sessions["session_number"] = sessions["session_number"].astype("int32")
    sessions["session_date"] = sessions["session_start"].dt.normalize()
    sessions["duration_minutes"] = (
        sessions["session_end"] - sessions["session_start"]
    ).dt.total_seconds() / 60.0
    columns = [
        "session_id",
        "customer_id",
        "session_number",
        "session_start",
        "session_end",
        "session_date",
        "duration_minutes",
        "orders",
        "revenue_usd",
    ]
    return sessions[columns]


def _retention(orders: pd.DataFrame) -> pd.DataFrame:
    active = orders.assign(activity_month=orders["order_date"].dt.to_period("M"))[
        ["customer_id", "activity_month"]
    ].drop_duplicates()
    cohort = active.groupby("customer_id")["activity_month"].min().rename("cohort_month")
    active = active.join(cohort, on="customer_id")
    active["month_offset"] = (active["activity_month"] - active["cohort_month"]).map(lambda d: d.n)
    sizes = cohort.value_counts().rename("cohort_size")
    last = active["activity_month"].max()
    grid = pd.DataFrame(
        [
            {"cohort_month": c, "month_offset": k}
            for c in sizes.index
            for k in range((last - c).n + 1)
        ]
    )
    retained = active.groupby(["cohort_month", "month_offset"]).size().rename("retained_customers")
    out = grid.join(sizes, on="cohort_month").join(retained, on=["cohort_month", "month_offset"])
    out["retained_customers"] = out["retained_customers"].fillna(0).astype("int64")
    out["activity_month"] = [
        c + k for c, k in zip(out["cohort_month"], out["month_offset"], strict=True)
    ]
    out["churned_customers"] = out["cohort_size"] - out["retained_customers"]
    out["retention_rate"] = out["retained_customers"] / out["cohort_size"]
    out["churn_rate"] = 1 - out["retention_rate"]
    out["month_offset"] = out["month_offset"].astype("int32")
    for column in ("cohort_month", "activity_month"):
        out[column] = pd.PeriodIndex(out[column]).start_time
    columns = [
        "cohort_month",
        "month_offset",
        "activity_month",
        "cohort_size",
        "retained_customers",
        "churned_customers",
        "retention_rate",
        "churn_rate",
    ]
    return out[columns]


def _rfm(orders: pd.DataFrame) -> pd.DataFrame:
    as_of = orders["order_date"].max()
    revenue = orders[orders["is_revenue"]]
    customers = (
        revenue.groupby("customer_id")
        .agg(
            last_order_date=("order_date", "max"),
            frequency=("order_id", "size"),
            monetary_usd=("order_total_usd", "sum"),
        )
        .reset_index()
    )
    customers["monetary_usd"] = customers["monetary_usd"].round(2)
    customers["as_of_date"] = as_of
    customers["recency_days"] = (as_of - customers["last_order_date"]).dt.days
    n = len(customers)

    def score(column: str, ascending: bool) -> pd.Series:
        rank = customers[column].rank(method="min", ascending=ascending).astype("int64")
        return (1 + (5 * (rank - 1)) // n).astype("int32")

    customers["recency_score"] = score("recency_days", ascending=False)
    customers["frequency_score"] = score("frequency", ascending=True)
    customers["monetary_score"] = score("monetary_usd", ascending=True)
    customers["rfm_code"] = (
        customers["recency_score"].astype(str)
        + customers["frequency_score"].astype(str)
        + customers["monetary_score"].astype(str)
    )
    r, f = customers["recency_score"], customers["frequency_score"]
    customers["segment"] = np.select(
        [(r >= 4) & (f >= 4), (r >= 3) & (f >= 3), r >= 4, (r <= 2) & (f >= 3), r <= 2],
        ["champions", "loyal", "new_customers", "at_risk", "hibernating"],
        default="needs_attention",
    )
    columns = [
        "customer_id",
        "as_of_date",
        "last_order_date",
        "recency_days",
        "frequency",
        "monetary_usd",
        "recency_score",
        "frequency_score",
        "monetary_score",
        "rfm_code",
        "segment",
    ]
    return customers[columns]


# --------------------------------------------------------------------------------------------
# Checks

_PUBLISHED_VIOLATIONS: dict[str, Callable[[pd.DataFrame], list[pd.Series]]] = {
    "fx_rates": lambda d: [
        d["currency"].isna(),
        mismatch(d["currency"], r"[A-Z]{3}"),
        d["usd_per_unit"].isna() | (d["usd_per_unit"] <= 0),
    ],
    "customers": lambda d: [
        d["customer_id"].isna(),
        mismatch(d["customer_id"], r"C\d{6}"),
        mismatch(d["country"], r"[A-Z]{2}"),
        d["segment"].notna() & ~d["segment"].isin(m.SEGMENTS),
        d["updated_at"].isna(),
    ],
    "products": lambda d: [
        d["product_id"].isna(),
        mismatch(d["product_id"], r"P\d{5}"),
        d["product_name"].isna(),
        d["list_price_usd"].isna() | (d["list_price_usd"] <= 0) | (d["list_price_usd"] > 10000),
    ],
    "order_lines": lambda d: [
        d["order_id"].isna(),
        mismatch(d["order_id"], r"O\d{9}"),
        fails(d["line_no"].isna() | (d["line_no"] < 1)),
        d["product_id"].isna(),
        fails(d["quantity"].isna() | (d["quantity"] < 1) | (d["quantity"] > 100)),
        d["unit_price_local"].isna()
        | (d["unit_price_local"] <= 0)
        | (d["unit_price_local"] > 100_000),
    ],
    "orders": lambda d: [
        d["order_id"].isna(),
        mismatch(d["order_id"], r"O\d{9}"),
        d["customer_id"].isna(),
        d["order_ts"].isna(),
        d["status"].notna() & ~d["status"].isin(m.STATUSES),
        d["currency"].notna() & ~d["currency"].isin(m.ORDER_CURRENCIES),
    ],
}


def _checks(
    silver: dict[str, _Split],
    gold: dict[str, pd.DataFrame],
    rows_in: dict[str, int],
    bench_range: BenchRange,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    def record(name: str, passed: bool, severity: str = "error") -> None:
        results.append({"name": name, "passed": bool(passed), "severity": severity})

    days = {pd.Timestamp(k) for k in bench_range.keys}
    for dataset, split in silver.items():
        published = split.published
        for spec in m.ROW_RULES[dataset]:
            failing = split.rule_failures[spec.id]
            record(spec.id, failing * 100 <= spec.threshold_pct * split.rows_in, spec.severity)
        record(
            f"{dataset}.rows_reconcile",
            rows_in[dataset] == len(published) + len(split.quarantined),
        )
        key = list(m.PRIMARY_KEYS[dataset])
        record(f"{dataset}.primary_key_unique", not published.duplicated(subset=key).any())
        violations = _PUBLISHED_VIOLATIONS[dataset](published)
        record(f"{dataset}.schema", not any(bool(v.any()) for v in violations))
        delivered_days = set(pd.to_datetime(published["partition_date"].unique()))
        record(f"{dataset}.row_count", days <= delivered_days, "warning")
        record(f"{dataset}.unexpected_columns", published["_extra_columns"].isna().all(), "warning")
    first_catalog = silver["products"].published.groupby("product_id")["partition_date"].min()
    lines = silver["order_lines"].published
    known_product = lines["product_id"].map(first_catalog) <= lines["partition_date"]
    record("order_lines.product_id.known_product", known_product.all(), "warning")
    first_delivery = silver["customers"].published.groupby("customer_id")["partition_date"].min()
    orders = silver["orders"].published
    known_customer = orders["customer_id"].map(first_delivery) <= orders["partition_date"]
    record("orders.customer_id.known_customer", known_customer.all(), "warning")
    for test in GOLD_TESTS:
        record(f"gold.{test.name}", failing_rows_pandas(test, gold) == 0)
    return results
