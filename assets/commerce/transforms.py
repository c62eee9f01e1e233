"""Commerce bronze → typed frames: parsing only, no decisions about what to publish.

Silver splits each typed frame into published and quarantined rows with the contract mechanism
(``data_products.lib.contracts``). These functions only make that possible: they turn delivered
text into typed values *without dropping or repairing anything*, and keep the evidence a rule
needs. The convention, per model column ``c``:

- ``c`` is the typed value, null where the text is empty or does not parse (a ``type`` rule then
  sees ``c`` null with ``c__raw`` non-empty; a ``required`` rule sees ``c__raw`` empty);
- ``c__raw`` is the text exactly as delivered (U+FFFD included, for the ``encoding`` rule);
- cross-column and cross-row facts are booleans the contract reads as ``flag:<column>`` rules:
  ``_known_rate`` (a rate exists for the currency that day), ``_in_partition`` (the order's date
  is the delivery day; false when it cannot be shown) and ``_lines_complete`` (every delivered
  line of an order was published);
- ``_delivered__<name>`` carries each delivered column unchanged (the quarantine encodes a
  rejected row's record from them), ``_extra_columns`` the delivered columns the model does not
  know (schema drift such as ``coupon_code``) as a JSON object, or null;
- ``partition_date``, ``_source_file`` and ``_source_line`` are carried through unchanged.

Formats understood (MODEL.md "Defects"): numbers ``1234.56``, ``1,234.56``, ``1.234,56``,
``$1,234.56`` (any of ``$ € £ ¥``, minus sign before or after the symbol); timestamps
``2026-01-03T10:15:00Z``, ``2026-01-03 10:15:00``, ``03/01/2026 10:15`` (day first), all UTC;
dates ``2026-01-03`` and ``03/01/2026``; currency codes in any case or as a symbol; integers
written as integral decimals (``"2.0"`` → 2, ``"1.5"`` → null).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from data_products.lib.contracts.expressions import json_object
from data_products.lib.contracts.model import DELIVERED_PREFIX, RAW_SUFFIX
from data_products.lib.distinct import per_distinct
from data_products.lib.landing import INGEST_COLUMNS
from data_products.lib.ordering import sort_unless_sorted

LINEAGE_COLUMNS = ("partition_date", "_source_file", "_source_line")

# Delivered columns of each landing file (MODEL.md "Landing"), and renames seen in drift.
DELIVERED_COLUMNS: Mapping[str, tuple[str, ...]] = {
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
ALIASES: Mapping[str, Mapping[str, str]] = {"orders": {"price": "unit_price"}}

CURRENCY_SYMBOLS: Mapping[str, str] = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
USD = "USD"

_INT32_MAX = 2**31 - 1
# Applied after removing blanks and currency symbols; the first pattern that matches decides.
# A lone "1.234" is read as a decimal: no delivered format writes thousands without decimals.
_PLAIN = r"^-?\d+(\.\d+)?$"
_US_GROUPED = r"^-?\d{1,3}(,\d{3})+(\.\d+)?$"
_EU_GROUPED = r"^-?\d{1,3}(\.\d{3})+(,\d+)?$"
_EU_DECIMAL = r"^-?\d+,\d+$"
_NUMBER_NOISE = r"[\s$€£¥]"
_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
)
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")


def raw(column: str) -> str:
    """Name of the column holding the delivered text of typed ``column``."""
    return f"{column}{RAW_SUFFIX}"


# --------------------------------------------------------------------------------------------
# Parsers: expressions over delivered text (vectorised; no Python runs per row)
# --------------------------------------------------------------------------------------------
def clean_text(text: pl.Expr) -> pl.Expr:
    """Trimmed text; empty becomes null."""
    trimmed = text.cast(pl.Utf8).str.strip_chars()
    return pl.when(trimmed == "").then(None).otherwise(trimmed)


def parse_number(text: pl.Expr) -> pl.Expr:
    """Float64 from any delivered number format; null when empty or not a number."""
    compact = text.cast(pl.Utf8).str.replace_all(_NUMBER_NOISE, "")
    canonical = (
        pl.when(compact.str.contains(_PLAIN))
        .then(compact)
        .when(compact.str.contains(_US_GROUPED))
        .then(compact.str.replace_all(",", "", literal=True))
        .when(compact.str.contains(_EU_GROUPED))
        .then(compact.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
        .when(compact.str.contains(_EU_DECIMAL))
        .then(compact.str.replace(",", ".", literal=True))
    )
    return canonical.cast(pl.Float64, strict=False)


def parse_integer(text: pl.Expr) -> pl.Expr:
    """Int32 from an integer or an integral decimal (``"2.0"``); null for ``"1.5"`` or text.

    A plain cast would truncate 1.5 to 1 and hide a delivery error, so non-integral values become
    null and the contract's ``type`` rule rejects the row.
    """
    number = parse_number(text)
    integral = (number == number.floor()) & (number.abs() <= _INT32_MAX)
    return pl.when(integral).then(number).otherwise(None).cast(pl.Int32)


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """Naive UTC Datetime(us) from the delivered timestamp formats (or a bare date)."""
    trimmed = text.cast(pl.Utf8).str.strip_chars()
    candidates = [
        trimmed.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in _TIMESTAMP_FORMATS
    ]
    candidates.append(_parse_date_only(trimmed).cast(pl.Datetime("us")))
    return pl.coalesce(candidates)


def parse_date(text: pl.Expr) -> pl.Expr:
    """Date from ``2026-01-03`` / ``03/01/2026`` (day first) or from any timestamp format."""
    trimmed = text.cast(pl.Utf8).str.strip_chars()
    return pl.coalesce(_parse_date_only(trimmed), parse_timestamp(trimmed).dt.date())


def _parse_date_only(trimmed: pl.Expr) -> pl.Expr:
    return pl.coalesce([trimmed.str.strptime(pl.Date, f, strict=False) for f in _DATE_FORMATS])


def normalise_currency(text: pl.Expr) -> pl.Expr:
    """Upper-case ISO code; a lone symbol becomes its code. Unknown codes pass through so the
    contract can reject them by name (``XXX``)."""
    code = clean_text(text).str.to_uppercase()
    return code.replace(dict(CURRENCY_SYMBOLS))


def _lower(text: pl.Expr) -> pl.Expr:
    return clean_text(text).str.to_lowercase()


def _upper(text: pl.Expr) -> pl.Expr:
    return clean_text(text).str.to_uppercase()


# --------------------------------------------------------------------------------------------
# Delivered values, raw columns and record JSON
# --------------------------------------------------------------------------------------------
def _data_columns(bronze: pl.DataFrame) -> list[str]:
    """Delivered columns, in delivered order (everything bronze did not add)."""
    return [c for c in bronze.columns if c not in INGEST_COLUMNS and not c.startswith("_")]


def _delivered(bronze: pl.DataFrame, dataset: str, renames: Mapping[str, str]) -> pl.LazyFrame:
    """Lineage, ``<typed name>__raw`` per model column (aliases resolved), the delivered
    columns and the drift JSON."""
    missing = [c for c in LINEAGE_COLUMNS if c not in bronze.columns]
    if missing:
        raise ValueError(f"commerce {dataset}: bronze frame lacks lineage columns {missing}")
    data = _data_columns(bronze)
    aliases = ALIASES.get(dataset, {})
    model = DELIVERED_COLUMNS[dataset]
    raws: list[pl.Expr] = []
    for column in model:
        sources = [column, *(a for a, target in aliases.items() if target == column)]
        present = [pl.col(s).cast(pl.Utf8) for s in sources if s in data]
        text = pl.coalesce(present) if present else pl.lit(None, dtype=pl.Utf8)
        raws.append(text.alias(raw(renames.get(column, column))))
    extras = [c for c in data if c not in model and c not in aliases]
    extra_json = json_object(extras)
    return bronze.lazy().select(
        *LINEAGE_COLUMNS,
        *raws,
        *(pl.col(c).alias(f"{DELIVERED_PREFIX}{c}") for c in data),
        pl.when(extra_json == "")
        .then(None)
        .otherwise(pl.concat_str([pl.lit("{"), extra_json, pl.lit("}")]))
        .alias("_extra_columns"),
    )


def _finish(frame: pl.LazyFrame, typed: Sequence[str]) -> pl.DataFrame:
    """Typed columns first, then lineage, flags, drift JSON, raw texts and delivered columns."""
    names = frame.collect_schema().names()
    flags = [c for c in names if c in ("_known_rate", "_in_partition", "_lines_complete")]
    raws = [c for c in names if c.endswith(RAW_SUFFIX)]
    delivered = [c for c in names if c.startswith(DELIVERED_PREFIX)]
    ordered = [*typed, *LINEAGE_COLUMNS, *flags, "_extra_columns", *raws, *delivered]
    return frame.select(ordered).collect()


# --------------------------------------------------------------------------------------------
# Exchange rates
# --------------------------------------------------------------------------------------------
def type_fx_rates(bronze: pl.DataFrame) -> pl.DataFrame:
    """``rate_date, currency, usd_per_unit`` typed (rate_date is kept for reference only)."""
    typed = _delivered(bronze, "fx_rates", {}).with_columns(
        rate_date=parse_date(pl.col(raw("rate_date"))),
        currency=normalise_currency(pl.col(raw("currency"))),
        usd_per_unit=parse_number(pl.col(raw("usd_per_unit"))),
    )
    return _finish(typed, ["currency", "usd_per_unit", "rate_date"])


def _rates(fx: pl.DataFrame) -> pl.LazyFrame:
    """One usable rate per (partition_date, currency): the first delivered valid row wins.

    Accepts published or typed fx_rates (typed ones may still hold rejected rows, hence the
    filter), so conversion never depends on a row the fx contract would reject.
    """
    needed = {"partition_date", "currency", "usd_per_unit"}
    if not needed <= set(fx.columns):
        raise ValueError(f"fx frame needs columns {sorted(needed)}, has {fx.columns}")
    order = [c for c in LINEAGE_COLUMNS if c in fx.columns]
    return (
        fx.lazy()
        .filter(pl.col("currency").str.contains(r"^[A-Z]{3}$") & (pl.col("usd_per_unit") > 0))
        .sort(order, maintain_order=True)
        .unique(subset=["partition_date", "currency"], keep="first", maintain_order=True)
        .select(
            pl.col("partition_date").cast(pl.Date),
            pl.col("currency").cast(pl.Utf8),
            pl.col("usd_per_unit").cast(pl.Float64).alias("_rate"),
        )
    )


def _with_rate(frame: pl.LazyFrame, fx: pl.DataFrame) -> pl.LazyFrame:
    """Adds ``_rate`` (USD is always 1.0) and the ``_known_rate`` flag."""
    joined = frame.join(
        _rates(fx), on=["partition_date", "currency"], how="left", maintain_order="left"
    )
    rate = pl.when(pl.col("currency") == USD).then(pl.lit(1.0)).otherwise(pl.col("_rate"))
    return joined.with_columns(_rate=rate).with_columns(_known_rate=pl.col("_rate").is_not_null())


def to_usd(amount: pl.Expr, rate: pl.Expr) -> pl.Expr:
    """MODEL.md money rule: convert, then round to cents."""
    return (amount * rate).round(2)


# --------------------------------------------------------------------------------------------
# Customers and products
# --------------------------------------------------------------------------------------------
def type_customers(bronze: pl.DataFrame) -> pl.DataFrame:
    """Customer rows typed; full_name keeps any U+FFFD so the encoding rule can see it."""
    typed = _delivered(bronze, "customers", {}).with_columns(
        customer_id=clean_text(pl.col(raw("customer_id"))),
        email=clean_text(pl.col(raw("email"))),
        full_name=clean_text(pl.col(raw("full_name"))),
        country=per_distinct(pl.col(raw("country")), _upper),
        segment=per_distinct(pl.col(raw("segment")), _lower),
        signup_date=per_distinct(pl.col(raw("signup_date")), parse_date),
        updated_at=parse_timestamp(pl.col(raw("updated_at"))),
    )
    columns = ["customer_id", "email", "full_name", "country", "segment", "signup_date",
               "updated_at"]  # fmt: skip
    return _finish(typed, columns)


def type_products(bronze: pl.DataFrame, fx: pl.DataFrame) -> pl.DataFrame:
    """Product rows typed, ``list_price`` converted to ``list_price_usd`` with that day's rate.

    ``list_price_usd__raw`` is the delivered price text, so an unparseable price is a ``type``
    failure of list_price_usd and an empty one a ``required`` failure.
    """
    typed = (
        _delivered(bronze, "products", {})
        .with_columns(
            product_id=clean_text(pl.col(raw("product_id"))),
            product_name=clean_text(pl.col(raw("product_name"))),
            category=clean_text(pl.col(raw("category"))),
            list_price=parse_number(pl.col(raw("list_price"))),
            currency=normalise_currency(pl.col(raw("currency"))),
        )
        .pipe(_with_rate, fx)
        .with_columns(
            list_price_usd=to_usd(pl.col("list_price"), pl.col("_rate")),
            list_price_usd__raw=pl.col(raw("list_price")),
        )
    )
    columns = ["product_id", "product_name", "category", "list_price_usd", "list_price",
               "currency"]  # fmt: skip
    return _finish(typed, columns)


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------
_ORDER_RENAMES = {"unit_price": "unit_price_local"}
ORDER_LINE_COLUMNS = (
    "order_id", "line_no", "product_id", "quantity", "unit_price_local", "unit_price_usd",
    "line_amount_usd", "currency", "order_ts", "order_date", "customer_id", "status",
)  # fmt: skip
ORDER_HEADER_FIELDS = ("customer_id", "order_ts", "order_date", "status", "currency")


def type_order_lines(bronze_orders: pl.DataFrame, fx: pl.DataFrame) -> pl.DataFrame:
    """One typed row per delivered order line, with USD amounts and the line's flags.

    Header fields (order_ts, customer_id, status, currency) stay on the lines so ``build_orders``
    can derive headers from the same typed frame. ``_in_partition`` is false when order_ts does
    not parse: a line that cannot show it belongs to the day is not published for it.
    """
    typed = (
        _delivered(bronze_orders, "orders", _ORDER_RENAMES)
        .with_columns(
            order_id=clean_text(pl.col(raw("order_id"))),
            # A day repeats a few values of these (5 line numbers, 14 quantities, ~5,000 prices).
            line_no=per_distinct(pl.col(raw("line_no")), parse_integer),
            product_id=clean_text(pl.col(raw("product_id"))),
            quantity=per_distinct(pl.col(raw("quantity")), parse_integer),
            unit_price_local=per_distinct(pl.col(raw("unit_price_local")), parse_number),
            currency=per_distinct(pl.col(raw("currency")), normalise_currency),
            order_ts=parse_timestamp(pl.col(raw("order_ts"))),
            customer_id=clean_text(pl.col(raw("customer_id"))),
            status=per_distinct(pl.col(raw("status")), _lower),
        )
        .drop(raw("customer_email"))  # not modelled in silver; it stays in the delivered record
        .pipe(_with_rate, fx)
        .with_columns(
            unit_price_usd=to_usd(pl.col("unit_price_local"), pl.col("_rate")),
            order_date=pl.col("order_ts").dt.date(),
        )
        .with_columns(
            line_amount_usd=(pl.col("quantity") * pl.col("unit_price_usd")).round(2),
            _in_partition=_in_partition(),
        )
    )
    return _finish(typed, ORDER_LINE_COLUMNS)


def _in_partition() -> pl.Expr:
    return (pl.col("order_date") == pl.col("partition_date")).fill_null(False)


def build_orders(typed_lines: pl.DataFrame, published_lines: pl.DataFrame) -> pl.DataFrame:
    """One header per distinct delivered order_id (per partition; empty ids form one header).

    Header fields and lineage come from the order's first delivered line (by file, then line).
    Totals come from the *published* lines, and ``_lines_complete`` says whether every delivered
    line of the order has a published line with its (order_id, line_no); an order missing any
    line is rejected whole (rule ``orders.lines.complete``) so revenue never counts half of it.
    """
    keys = ["partition_date", "order_id"]
    published = published_lines.lazy().select(
        pl.col("partition_date").cast(pl.Date),
        pl.col("order_id").cast(pl.Utf8),
        pl.col("quantity").cast(pl.Int32),
        pl.col("unit_price_local").cast(pl.Float64),
        pl.col("line_amount_usd").cast(pl.Float64),
    )
    totals = published.group_by(keys).agg(
        order_total_local=(pl.col("quantity") * pl.col("unit_price_local")).sum().round(2),
        order_total_usd=pl.col("line_amount_usd").sum().round(2),
        line_count=pl.len().cast(pl.Int32),
    )
    first_of = [
        *ORDER_HEADER_FIELDS, "_source_file", "_source_line", "_extra_columns",
        *(raw(c) for c in ("order_id", "customer_id", "order_ts", "status", "currency")),
        *(c for c in typed_lines.columns if c.startswith(DELIVERED_PREFIX)),
    ]  # fmt: skip
    # Polars' sort is stable, so after it the first row of an order is its first delivered line;
    # ``unique(keep="first")`` then picks the header fields without aggregating every column.
    lines = sort_unless_sorted(
        typed_lines.select(*keys, "line_no", *first_of),
        ["partition_date", "_source_file", "_source_line"],
    ).lazy()
    # Published lines are unique by (order_id, line_no) and each is a delivered line, so an order
    # is complete exactly when it published as many lines as it delivered distinct line numbers
    # (an unparseable line number counts as one more, null, number). Counting replaces a join of
    # every delivered line to the published keys.
    delivered = lines.group_by(keys).agg(_delivered_lines=pl.col("line_no").n_unique())
    headers = (
        lines.unique(subset=keys, keep="first", maintain_order=True)
        .drop("line_no")
        # An empty order_id forms one header too (null keys group together), so match it here.
        .join(delivered, on=keys, how="left", maintain_order="left", nulls_equal=True)
        .join(totals, on=keys, how="left", maintain_order="left")
        .with_columns(line_count=pl.col("line_count").fill_null(0))
        .with_columns(
            _lines_complete=pl.col("_delivered_lines") == pl.col("line_count"),
            _in_partition=_in_partition(),
        )
    )
    columns = ["order_id", "customer_id", "order_ts", "order_date", "status", "currency",
               "order_total_local", "order_total_usd", "line_count"]  # fmt: skip
    return _finish(headers, columns)
