"""The commerce model as the hand-written implementations see it (MODEL.md and the contracts).

Written out here on purpose rather than imported from ``assets.commerce`` or compiled from the
contracts: the DuckDB and pandas implementations stand for what a user writes *without* the
platform, and the correctness guard is only worth something if they do not share the code under
test. What they do share is this statement of the rules, in contract order: a row is filed under
its first failing error rule, exactly as the platform's quarantine split does.
"""

from __future__ import annotations

from dataclasses import dataclass

CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
ORDER_CURRENCIES = ("USD", "EUR", "GBP", "JPY")
STATUSES = ("placed", "shipped", "cancelled", "returned")
SEGMENTS = ("consumer", "business", "vip")
REVENUE_STATUSES = ("placed", "shipped")

# Number formats 1234.56 | 1,234.56 | 1.234,56 | $1,234.56, tried in this order after removing
# blanks and currency symbols; anchors are explicit so every engine reads them as full matches.
NUMBER_NOISE = r"[\s$€£¥]"
PLAIN = r"^-?\d+(\.\d+)?$"
US_GROUPED = r"^-?\d{1,3}(,\d{3})+(\.\d+)?$"
EU_GROUPED = r"^-?\d{1,3}(\.\d{3})+(,\d+)?$"
EU_DECIMAL = r"^-?\d+,\d+$"
TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
)
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")
INT32_MAX = 2**31 - 1
REPLACEMENT_CHARACTER = "\ufffd"
SESSION_GAP_MINUTES = 30

DELIVERED = {
    "fx_rates": ("rate_date", "currency", "usd_per_unit"),
    "customers": (
        "customer_id", "email", "full_name", "country", "segment", "signup_date", "updated_at",
    ),
    "products": ("product_id", "product_name", "category", "list_price", "currency"),
    "orders": (
        "order_id", "line_no", "order_ts", "customer_id", "customer_email", "product_id",
        "quantity", "unit_price", "currency", "status",
    ),
}  # fmt: skip
ALIASES = {"orders": {"price": "unit_price"}}
"""Drift: from day 4 ``orders.csv`` calls ``unit_price`` ``price``."""

PRIMARY_KEYS = {
    "fx_rates": ("partition_date", "currency"),
    "customers": ("partition_date", "customer_id"),
    "products": ("partition_date", "product_id"),
    "order_lines": ("order_id", "line_no"),
    "orders": ("order_id",),
}

PUBLISHED_COLUMNS = {
    "fx_rates": ("partition_date", "currency", "usd_per_unit"),
    "customers": (
        "partition_date", "customer_id", "email", "full_name", "country", "segment",
        "signup_date", "updated_at",
    ),
    "products": ("partition_date", "product_id", "product_name", "category", "list_price_usd"),
    "order_lines": (
        "order_id", "line_no", "product_id", "quantity", "unit_price_local", "unit_price_usd",
        "line_amount_usd",
    ),
    "orders": (
        "order_id", "customer_id", "order_ts", "order_date", "status", "currency",
        "order_total_local", "order_total_usd", "line_count",
    ),
}  # fmt: skip
LINEAGE = ("partition_date", "_source_file", "_source_line")


@dataclass(frozen=True)
class RuleSpec:
    """A row rule: ``error`` rules quarantine, ``warning`` rules only count. The check fails when
    more than ``threshold_pct`` of the rows break it."""

    id: str
    severity: str = "error"
    threshold_pct: float = 5.0


def _rules(*specs: str | tuple[str, str, float]) -> tuple[RuleSpec, ...]:
    return tuple(RuleSpec(s) if isinstance(s, str) else RuleSpec(*s) for s in specs)


ROW_RULES: dict[str, tuple[RuleSpec, ...]] = {
    "fx_rates": _rules(
        ("fx_rates.currency.required", "error", 0.0),
        ("fx_rates.currency.pattern", "error", 0.0),
        ("fx_rates.usd_per_unit.required", "error", 0.0),
        ("fx_rates.usd_per_unit.type", "error", 0.0),
        ("fx_rates.usd_per_unit.range", "error", 0.0),
    ),
    "customers": _rules(
        "customers.customer_id.required",
        "customers.customer_id.pattern",
        ("customers.email.pattern", "warning", 5.0),
        "customers.full_name.encoding",
        "customers.country.pattern",
        "customers.segment.valid_values",
        "customers.signup_date.type",
        "customers.updated_at.required",
        "customers.updated_at.type",
    ),
    "products": _rules(
        "products.product_id.required",
        "products.product_id.pattern",
        "products.product_name.required",
        "products.list_price_usd.known_rate",
        "products.list_price_usd.required",
        "products.list_price_usd.type",
        "products.list_price_usd.range",
    ),
    "order_lines": _rules(
        "order_lines.order_id.required",
        "order_lines.order_id.pattern",
        "order_lines.line_no.required",
        "order_lines.line_no.type",
        "order_lines.line_no.range",
        "order_lines.product_id.required",
        "order_lines.quantity.required",
        "order_lines.quantity.type",
        "order_lines.quantity.range",
        "order_lines.unit_price_local.required",
        "order_lines.unit_price_local.type",
        "order_lines.unit_price_local.range",
        "order_lines.order_ts.in_partition",
        "order_lines.currency.known_rate",
    ),
    "orders": _rules(
        "orders.order_id.required",
        "orders.order_id.pattern",
        "orders.customer_id.required",
        "orders.order_ts.required",
        "orders.order_ts.type",
        "orders.order_ts.in_partition",
        "orders.status.valid_values",
        "orders.currency.valid_values",
        ("orders.lines.complete", "error", 25.0),
    ),
}


def duplicate_rule(dataset: str) -> str:
    return f"{dataset}.primary_key.duplicate"


def error_rules(dataset: str) -> list[str]:
    return [r.id for r in ROW_RULES[dataset] if r.severity == "error"]
