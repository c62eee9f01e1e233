"""Seeded generator of the commerce landing drops described in MODEL.md, and of their ground truth.

The demo, the tests and the benchmarks need messy input whose *correct* silver output is known
without trusting the code under test. So the generator starts from clean values, injects every
defect MODEL.md lists, writes the CSV drops, and writes beside them (as parquet) the rows silver
must publish and one row per raw record silver must quarantine, with the rule that rejects it.

Everything is vectorised (numpy draws, polars string building): a million order lines a day take
seconds. Every random draw comes from a generator seeded by ``(seed, day index, purpose)``, so the
same seed gives byte-identical files and a day never depends on how many days follow it.

Run it: ``python -m assets.commerce.generator --start 2026-01-01 --days 14 --rows-per-day 300``.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from data_products.lib.keys import validate_partition_key
from data_products.lib.settings import Settings, get_settings

DOMAIN = "commerce"
DATASETS = ("fx_rates", "customers", "products", "orders", "order_lines")

CURRENCIES = ("USD", "EUR", "GBP", "JPY")
STATUSES = ("placed", "shipped", "cancelled", "returned")
SEGMENTS = ("consumer", "business", "vip")
N_PRODUCTS = 200
# New customer ids stop here: ids above it are the deliberately unknown customers of orders.
CUSTOMER_CAPACITY = 900_000
RATE_SCALE = 10**8  # rates are kept as integer 1e-8 units so text and truth are the same double

# Drift, by 0-based day index from the first generated day (MODEL.md "Drift").
PRICE_RENAMED_FROM_DAY = 4
COUPON_FROM_DAY = 7
DECIMAL_QUANTITY_DAY = 10

# Rule ids (MODEL.md grammar `<dataset>.<column>.<rule>`); the contracts must use the same ids.
LINES_COMPLETE = "orders.lines.complete"
KNOWN_RATE = "order_lines.currency.known_rate"
ORDERS_IN_PARTITION = "orders.order_ts.in_partition"
LINES_IN_PARTITION = "order_lines.order_ts.in_partition"


def duplicate_rule(dataset: str) -> str:
    return f"{dataset}.primary_key.duplicate"


@dataclass(frozen=True)
class _OrderDefect:
    """A defect applied to every line of an order (header fields are denormalised onto lines)."""

    kind: str
    rate: float
    line_rule: str | None  # what rejects each line; None: lines stay valid
    header_rules: tuple[str, ...]  # what rejects the header, besides orders.lines.complete


_ORDER_DEFECTS = (
    _OrderDefect(
        "missing_order_id", 0.003, "order_lines.order_id.required", ("orders.order_id.required",)
    ),
    _OrderDefect("missing_customer_id", 0.003, None, ("orders.customer_id.required",)),
    # A line cannot show it belongs to the partition without a parseable order_ts: fails closed.
    _OrderDefect(
        "order_ts_unparseable",
        0.002,
        LINES_IN_PARTITION,
        ("orders.order_ts.type", ORDERS_IN_PARTITION),
    ),
    _OrderDefect(
        "order_ts_empty",
        0.002,
        LINES_IN_PARTITION,
        ("orders.order_ts.required", ORDERS_IN_PARTITION),
    ),
    _OrderDefect("order_ts_other_day", 0.004, LINES_IN_PARTITION, (ORDERS_IN_PARTITION,)),
    _OrderDefect("unknown_currency", 0.003, KNOWN_RATE, ("orders.currency.valid_values",)),
    # Valid variants: a warning rule (unknown customer) or a normalisation (currency case).
    _OrderDefect("unknown_customer", 0.004, None, ()),
    _OrderDefect("currency_lowercase", 0.02, None, ()),
)
_LINE_DEFECTS = (
    ("quantity_zero", 0.002, "order_lines.quantity.range"),
    ("quantity_huge", 0.002, "order_lines.quantity.range"),
    ("unit_price_negative", 0.002, "order_lines.unit_price_local.range"),
    ("unit_price_huge", 0.002, "order_lines.unit_price_local.range"),
)
_FRACTIONAL_QUANTITY = ("quantity_fractional", 0.02, "order_lines.quantity.type")
_CUSTOMER_DEFECTS = (
    ("missing_customer_id", 0.005, "customers.customer_id.required"),
    ("latin1_full_name", 0.01, "customers.full_name.encoding"),
    ("updated_at_unparseable", 0.005, "customers.updated_at.type"),
    ("country_invalid", 0.005, "customers.country.pattern"),
    ("segment_invalid", 0.005, "customers.segment.valid_values"),
    ("country_lowercase", 0.02, None),
    ("segment_capitalised", 0.02, None),
)
_DUPLICATE_ROW_RATE = 0.005
_RESENT_SHARE = 0.08

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_BASE_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0068}
_ORDER_CURRENCY_WEIGHTS = (0.5, 0.25, 0.15, 0.10)
_PRODUCT_CURRENCY_WEIGHTS = (0.7, 0.15, 0.10, 0.05)
_STATUS_WEIGHTS = (0.7, 0.2, 0.06, 0.04)
_SEGMENT_WEIGHTS = (0.75, 0.2, 0.05)
_COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "JP", "CA", "AU", "SE", "IE")
_COUNTRY_NAMES = ("Germany", "France", "United States", "Spain")
_BAD_SEGMENTS = ("gold", "platinum", "unknown")
_COUPONS = ("WINTER10", "FREESHIP", "VIP20", "WELCOME5")
_FIRST = (
    "Anna", "Ben", "Chloé", "David", "Emma", "Finn", "Grace", "Hugo", "Isla", "José", "Karin",
    "Liam", "Mia", "Noah", "Olga", "Paul", "Renée", "Sam", "Zoë", "Björn",
)  # fmt: skip
_LAST = (
    "Smith", "Müller", "García", "Rossi", "Jansen", "Dubois", "Tanaka", "Brown", "Lefèvre",
    "Novak", "Ward", "Núñez", "Olsen", "Byrne", "Kowalski", "Fischer",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "mail.example", "post.example", "corp.example")
# Delivered as latin-1 bytes: each accented letter is followed by ASCII, so never valid UTF-8.
_LATIN1_NAMES = ("Jürgen Müller", "Chloé Lefèvre", "José García", "Renée Dubois", "Björn Olsen")
_ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Eco", "Ultra", "Smart", "Travel", "Pro", "Mini", "Family",
    "Urban", "Vintage", "Rugged", "Silent", "Bright",
)  # fmt: skip
_NOUNS = (
    ("Kettle", "kitchen"), ("Toaster", "kitchen"), ("Blender", "kitchen"), ("Mug", "kitchen"),
    ("Backpack", "outdoor"), ("Tent", "outdoor"), ("Lantern", "outdoor"),
    ("Headphones", "electronics"), ("Speaker", "electronics"), ("Charger", "electronics"),
    ("Keyboard", "electronics"), ("Desk Lamp", "home"), ("Cushion", "home"), ("Blanket", "home"),
    ("Jacket", "apparel"), ("Sneakers", "apparel"), ("Scarf", "apparel"),
    ("Notebook", "office"), ("Pen Set", "office"), ("Board Game", "toys"),
)  # fmt: skip


def _slug(name: str) -> str:
    """ASCII lower-case for email addresses (``Núñez`` → ``nunez``)."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


_TS_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M")
_TS_STYLE_WEIGHTS = (0.5, 0.3, 0.2)
_DAY_FIRST_STYLE = 2  # minute precision: the truth drops the seconds for it
_PRICE_STYLE_WEIGHTS = (0.55, 0.2, 0.15, 0.1)  # 1234.56 | 1,234.56 | 1.234,56 | $1,234.56


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSummary:
    """One delivered CSV: raw rows, injected defects and expected quarantines by rule."""

    partition_date: date
    file: str  # relative to the landing root, e.g. commerce/2026-01-03/orders.csv
    rows: int
    defects: dict[str, int]  # injected defect kind -> raw rows carrying it
    quarantined: dict[str, int]  # rule id -> raw records of this file expected in quarantine


@dataclass(frozen=True)
class GenerationSummary:
    """What one ``generate`` call wrote; ``render()`` is the CLI's report."""

    landing_root: Path
    truth_root: Path
    start: date
    days: int
    rows_per_day: int
    seed: int
    files: tuple[FileSummary, ...]
    published: dict[str, int]  # dataset -> rows silver must publish over all days
    quarantined: dict[str, int]  # dataset -> records silver must quarantine over all days

    def file(self, day: date, name: str) -> FileSummary:
        """The summary of ``<name>`` delivered on ``day`` (KeyError if none was written)."""
        relative = f"{DOMAIN}/{day.isoformat()}/{name}"
        for summary in self.files:
            if summary.file == relative:
                return summary
        raise KeyError(f"no file {relative} in this generation")

    def render(self) -> str:
        lines = [
            f"commerce drops {self.start}..{self.start + timedelta(days=self.days - 1)} "
            f"(seed {self.seed}, {self.rows_per_day} order lines/day) -> "
            f"{self.landing_root / DOMAIN}",
        ]
        for day_index in range(self.days):
            day = self.start + timedelta(days=day_index)
            parts = [
                f"{Path(f.file).name} {f.rows} rows/{sum(f.quarantined.values())} bad"
                for f in self.files
                if f.partition_date == day
            ]
            lines.append(f"  {day}  " + ", ".join(parts))
        totals = ", ".join(
            f"{name} {self.published.get(name, 0)}/{self.quarantined.get(name, 0)}"
            for name in DATASETS
        )
        lines.append(f"expected published/quarantined: {totals}")
        lines.append(f"ground truth -> {self.truth_root / DOMAIN}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------
_EPOCH = date(1970, 1, 1)
_PURPOSES = {"fx": 1, "catalog": 2, "products": 3, "customers": 4, "orders": 5, "times": 6}


def _rng(seed: int, day_index: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, day_index, _PURPOSES[purpose]])


def _defect_count(rate: float, n: int, day_index: int, slot: int) -> int:
    expected = rate * n
    if expected >= 1:
        return round(expected)
    # Small demo drops still show every defect: alternate days so any two days have them all.
    return 1 if (day_index + slot) % 2 == 0 and n > 0 else 0


def _assign_kinds(
    rng: np.random.Generator,
    candidates: np.ndarray,
    specs: Sequence[tuple[str, float]],
    n_total: int,
    day_index: int,
) -> pl.Series:
    """Label disjoint random subsets of ``candidates`` (indices into n_total rows) with the kind
    names of ``specs``; null elsewhere.

    Disjoint so every rejected record has exactly one cause, which keeps the truth exact.
    """
    codes = np.full(n_total, -1, dtype=np.int64)
    order = rng.permutation(candidates)
    budget = len(candidates) // 2  # never corrupt more than half of a tiny drop
    position = 0
    for slot, (_, rate) in enumerate(specs):
        count = min(_defect_count(rate, len(candidates), day_index, slot), budget - position)
        if count <= 0:
            continue
        codes[order[position : position + count]] = slot
        position += count
    names = {slot: kind for slot, (kind, _) in enumerate(specs)}
    return pl.Series(codes).replace_strict(names, default=None, return_dtype=pl.Utf8)


def _zfill(expr: pl.Expr, width: int) -> pl.Expr:
    return expr.cast(pl.Utf8).str.zfill(width)


def _format_money(cents: pl.Expr, style: pl.Expr, symbol: pl.Expr) -> pl.Expr:
    """Integer cents as text in one of the four delivered number formats (always 2 decimals,
    so ``1.234`` never appears and every format parses back to exactly ``cents / 100``).
    Evaluate it in a lazy frame: the shared sub-expressions are then computed once."""
    magnitude = cents.abs()
    units = (magnitude // 100).cast(pl.Utf8)
    fraction = _zfill(magnitude % 100, 2)
    width = units.str.len_bytes()

    def grouped(separator: str) -> pl.Expr:
        sep = pl.lit(separator)
        return (
            pl.when(width > 6)
            .then(
                pl.concat_str(
                    [
                        units.str.slice(0, width - 6),
                        sep,
                        units.str.slice(width - 6, 3),
                        sep,
                        units.str.slice(-3),
                    ]
                )
            )
            .when(width > 3)
            .then(pl.concat_str([units.str.slice(0, width - 3), sep, units.str.slice(-3)]))
            .otherwise(units)
        )

    us = pl.concat_str([grouped(","), pl.lit("."), fraction])
    body = (
        pl.when(style == 0)
        .then(pl.concat_str([units, pl.lit("."), fraction]))
        .when(style == 1)
        .then(us)
        .when(style == 2)
        .then(pl.concat_str([grouped("."), pl.lit(","), fraction]))
        .otherwise(pl.concat_str([symbol, us]))
    )
    return pl.when(cents < 0).then(pl.concat_str([pl.lit("-"), body])).otherwise(body)


def _format_ts(ts: pl.Expr, style: pl.Expr) -> pl.Expr:
    out = (
        pl.when(style == 0)
        .then(ts.dt.strftime(_TS_FORMATS[0]))
        .when(style == 1)
        .then(ts.dt.strftime(_TS_FORMATS[1]))
    )
    return out.otherwise(ts.dt.strftime(_TS_FORMATS[2]))


def _truth_ts(ts: pl.Expr, style: pl.Expr) -> pl.Expr:
    """The instant the delivered text denotes (the day-first format has no seconds)."""
    return pl.when(style == _DAY_FIRST_STYLE).then(ts.dt.truncate("1m")).otherwise(ts)


def _timestamps(day: date, seconds: np.ndarray) -> pl.Series:
    """Naive UTC timestamps ``seconds`` after the day's midnight."""
    midnight = (day - _EPOCH).days * 86_400
    return pl.Series((midnight + seconds.astype(np.int64)) * 1_000_000).cast(pl.Datetime("us"))


def _local_cents(usd_cents: np.ndarray, rate_units: np.ndarray, jpy: np.ndarray) -> np.ndarray:
    """USD price in a currency: whole cents, whole yen for JPY."""
    local = usd_cents.astype(np.float64) * RATE_SCALE / rate_units
    # numpy types a mixed-operand `where` as Any; the result is the int64 array cast here.
    cents: np.ndarray = np.where(jpy, np.rint(local / 100) * 100, np.rint(local)).astype(np.int64)
    return cents


def _with_duplicates(frame: pl.DataFrame, rng: np.random.Generator, count: int) -> pl.DataFrame:
    """``frame`` plus ``count`` exact copies of random rows, each a few rows after its original.

    Adds ``_t_copy`` (True on the copies) so the injected duplicates can be counted.
    """
    n = frame.height
    frame = frame.with_columns(_t_copy=pl.lit(False), _t_order=pl.Series(np.arange(n) * 1.0))
    if count <= 0 or n == 0:
        return frame.drop("_t_order")
    originals = rng.integers(0, n, size=count)
    offsets = rng.integers(1, 40, size=count) + rng.random(count) * 0.9 + 0.05
    copies = frame[originals].with_columns(
        _t_copy=pl.lit(True), _t_order=pl.Series(originals + offsets)
    )
    return pl.concat([frame, copies]).sort("_t_order", maintain_order=True).drop("_t_order")


_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)


def _settle(frame: _Frame, dataset: str, keys: list[str]) -> _Frame:
    """Adds ``_t_first`` (published) and ``_t_failed`` (rule ids, empty when published).

    ``_t_rule`` is each raw record's own defect rule (null if valid). Among valid records of a
    key the first delivered (rows are in file, then line order) is kept; later ones are
    duplicates, as the contracts' ``<dataset>.primary_key.duplicate`` rule decides.
    """
    valid = pl.col("_t_rule").is_null()
    first = valid & pl.struct([*keys, valid.alias("_t_valid")]).is_first_distinct()
    failed = (
        pl.when(first)
        .then(pl.lit([], dtype=pl.List(pl.Utf8)))
        .when(valid)
        .then(pl.lit([duplicate_rule(dataset)]))
        .otherwise(pl.concat_list([pl.col("_t_rule")]))
    )
    return frame.with_columns(_t_first=first, _t_failed=failed)


def _defect_label(own: str) -> pl.Expr:
    return pl.when(pl.col("_t_copy")).then(pl.lit("duplicate_row")).otherwise(pl.col(own))


def _placed(frame: pl.DataFrame, relative: str, rank: int) -> pl.DataFrame:
    return frame.with_columns(
        _source_file=pl.lit(relative),
        _source_line=pl.int_range(2, frame.height + 2, dtype=pl.Int64),
        _t_file_rank=pl.lit(rank),
    )


def _quarantine_rows(frame: pl.DataFrame, dataset: str, day: date) -> pl.DataFrame:
    """Truth quarantine rows from a frame with ``_t_failed`` (list of rule ids, empty if valid)."""
    rejected = frame.filter(pl.col("_t_failed").list.len() > 0)
    return rejected.select(
        dataset=pl.lit(dataset),
        partition_date=pl.lit(day),
        source_file=pl.col("_source_file"),
        source_line=pl.col("_source_line").cast(pl.Int64),
        rule_id=pl.col("_t_failed").list.first(),
        failed_rules=pl.col("_t_failed"),
    )


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    """UTF-8, newline-terminated, a header line, quotes only where a field needs them."""
    frame.write_csv(path)


# --------------------------------------------------------------------------------------------
# Source-system state that evolves day by day
# --------------------------------------------------------------------------------------------
@dataclass
class _Fx:
    """Daily rates as integer 1e-8 units (a gentle random walk per currency)."""

    units: dict[str, int] = field(
        default_factory=lambda: {c: round(r * RATE_SCALE) for c, r in _BASE_RATES.items()}
    )

    def advance(self, rng: np.random.Generator) -> None:
        steps = rng.normal(0.0, 0.004, size=len(CURRENCIES))
        for currency, step in zip(CURRENCIES, steps, strict=True):
            if currency != "USD":
                base = _BASE_RATES[currency] * RATE_SCALE
                moved = self.units[currency] * float(np.exp(step))
                # stay within +-20% of the base so JPY prices keep within the 100000 range
                self.units[currency] = round(min(max(moved, base * 0.8), base * 1.2))

    def array(self) -> np.ndarray:
        return np.array([self.units[c] for c in CURRENCIES], dtype=np.int64)


@dataclass
class _Catalog:
    """~200 products with a USD base price and a listing currency; prices drift slowly."""

    names: list[str]
    categories: list[str]
    usd_cents: np.ndarray
    currency: np.ndarray  # index into CURRENCIES
    popularity: np.ndarray

    @classmethod
    def create(cls, seed: int) -> _Catalog:
        rng = _rng(seed, 0, "catalog")
        combos = rng.choice(len(_ADJECTIVES) * len(_NOUNS), size=N_PRODUCTS, replace=False)
        names = [f"{_ADJECTIVES[c // len(_NOUNS)]} {_NOUNS[c % len(_NOUNS)][0]}" for c in combos]
        categories = [_NOUNS[c % len(_NOUNS)][1] for c in combos]
        usd = np.clip(np.rint(np.exp(rng.normal(np.log(3500), 1.0, N_PRODUCTS))), 200, 50_000)
        currency = rng.choice(len(CURRENCIES), size=N_PRODUCTS, p=_PRODUCT_CURRENCY_WEIGHTS)
        weights = 1.0 / (np.arange(N_PRODUCTS) + 5.0)
        popularity = rng.permutation(weights / weights.sum())
        return cls(names, categories, usd.astype(np.int64), currency, popularity)

    def advance(self, rng: np.random.Generator) -> None:
        changed = rng.random(N_PRODUCTS) < 0.03
        factor = 1.0 + rng.normal(0.0, 0.08, N_PRODUCTS)
        moved = np.clip(np.rint(self.usd_cents * factor), 200, 50_000).astype(np.int64)
        self.usd_cents = np.where(changed, moved, self.usd_cents)


@dataclass
class _CustomerBook:
    """The source system's customer master; ``valid_since`` >= 0 once a valid row was delivered."""

    first: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    domain: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    email_version: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    country: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    segment: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    signup: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # epoch days
    valid_since: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def size(self) -> int:
        return len(self.first)

    def add(self, rng: np.random.Generator, count: int, signup_days: np.ndarray) -> np.ndarray:
        ids = np.arange(self.size, self.size + count)
        self.first = np.concatenate([self.first, rng.integers(0, len(_FIRST), count)])
        self.last = np.concatenate([self.last, rng.integers(0, len(_LAST), count)])
        self.domain = np.concatenate([self.domain, rng.integers(0, len(_EMAIL_DOMAINS), count)])
        self.email_version = np.concatenate([self.email_version, np.zeros(count, np.int64)])
        self.country = np.concatenate(
            [self.country, rng.choice(len(_COUNTRIES), count, p=_country_weights())]
        )
        self.segment = np.concatenate(
            [self.segment, rng.choice(len(SEGMENTS), count, p=_SEGMENT_WEIGHTS)]
        )
        self.signup = np.concatenate([self.signup, signup_days.astype(np.int64)])
        self.valid_since = np.concatenate([self.valid_since, np.full(count, -1, np.int64)])
        return ids

    def update(self, rng: np.random.Generator, ids: np.ndarray) -> None:
        """Change one attribute per customer: country, segment or email (SCD2 history)."""
        change = rng.integers(0, 3, len(ids))
        shift_country = rng.integers(1, len(_COUNTRIES), len(ids))
        shift_segment = rng.integers(1, len(SEGMENTS), len(ids))
        shift_domain = rng.integers(1, len(_EMAIL_DOMAINS), len(ids))
        c, s, e = ids[change == 0], ids[change == 1], ids[change == 2]
        self.country[c] = (self.country[c] + shift_country[change == 0]) % len(_COUNTRIES)
        self.segment[s] = (self.segment[s] + shift_segment[change == 1]) % len(SEGMENTS)
        self.domain[e] = (self.domain[e] + shift_domain[change == 2]) % len(_EMAIL_DOMAINS)
        self.email_version[e] += 1

    def orderable(self, day_index: int) -> np.ndarray:
        return np.flatnonzero((self.valid_since >= 0) & (self.valid_since <= day_index))

    def emails(self, ids: np.ndarray) -> pl.Expr:
        return _email_expr(
            self.first[ids], self.last[ids], ids, self.email_version[ids], self.domain[ids]
        )


def _country_weights() -> np.ndarray:
    weights = np.array([6.0, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1])
    shares: np.ndarray = weights / weights.sum()  # numpy types `sum()` as Any
    return shares


def _email_expr(
    first: np.ndarray, last: np.ndarray, ids: np.ndarray, version: np.ndarray, domain: np.ndarray
) -> pl.Expr:
    """``anna.smith.17@example.com``; an email change moves domain and adds ``+<version>``."""
    suffix = pl.lit(pl.Series(version))
    return pl.concat_str(
        [
            _names(first, [_slug(n) for n in _FIRST]),
            pl.lit("."),
            _names(last, [_slug(n) for n in _LAST]),
            pl.lit("."),
            pl.lit(pl.Series(ids + 1)).cast(pl.Utf8),
            pl.when(suffix > 0)
            .then(pl.concat_str([pl.lit("+"), suffix.cast(pl.Utf8)]))
            .otherwise(pl.lit("")),
            pl.lit("@"),
            _names(domain, _EMAIL_DOMAINS),
        ]
    )


def _names(codes: np.ndarray, names: Sequence[str]) -> pl.Expr:
    return pl.lit(pl.Series(codes)).replace_strict(dict(enumerate(names)), return_dtype=pl.Utf8)


def _customer_id(ids: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit("C"), _zfill(ids + 1, 6)])


# --------------------------------------------------------------------------------------------
# One day
# --------------------------------------------------------------------------------------------
@dataclass
class _DayOutput:
    files: list[FileSummary]
    truth: dict[str, pl.DataFrame]
    quarantine: list[pl.DataFrame]


@dataclass
class _Generator:
    landing_root: Path
    start: date
    rows_per_day: int
    seed: int
    fx: _Fx = field(default_factory=_Fx)
    catalog: _Catalog | None = None
    customers: _CustomerBook = field(default_factory=_CustomerBook)
    next_order_id: int = 1

    def day(self, day_index: int) -> _DayOutput:
        day = self.start + timedelta(days=day_index)
        key = validate_partition_key(day.isoformat())
        folder = self.landing_root / DOMAIN / key
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.csv"):
            # a re-generated day must not keep e.g. an orders_resent.csv of an older run
            stale.unlink()
        out = _DayOutput(files=[], truth={}, quarantine=[])
        self._fx_day(day_index, day, folder, out)
        self._products_day(day_index, day, folder, out)
        self._customers_day(day_index, day, folder, out)
        self._orders_day(day_index, day, folder, out)
        return out

    def _relative(self, day: date, name: str) -> str:
        return f"{DOMAIN}/{day.isoformat()}/{name}"

    def _record_file(
        self, out: _DayOutput, day: date, name: str, rows: pl.DataFrame, defects: pl.Expr
    ) -> None:
        relative = self._relative(day, name)
        counted = rows.select(defects.alias("kind")).drop_nulls()["kind"].value_counts()
        quarantined = (
            pl.concat(out.quarantine, how="vertical")
            .filter(pl.col("source_file") == relative)
            .filter(pl.col("dataset") != "orders")  # headers are derived, not raw records
            if out.quarantine
            else pl.DataFrame({"rule_id": []}, schema={"rule_id": pl.Utf8})
        )
        rule_counts = quarantined["rule_id"].value_counts()
        out.files.append(
            FileSummary(
                partition_date=day,
                file=relative,
                rows=rows.height,
                defects=dict(sorted(zip(counted["kind"], counted["count"], strict=True))),
                quarantined=dict(
                    sorted(zip(rule_counts["rule_id"], rule_counts["count"], strict=True))
                ),
            )
        )

    # ---------------------------------------------------------------- fx_rates
    def _fx_day(self, day_index: int, day: date, folder: Path, out: _DayOutput) -> None:
        rng = _rng(self.seed, day_index, "fx")
        if day_index > 0:
            self.fx.advance(rng)
        units = self.fx.array()
        day_first = rng.random(len(CURRENCIES)) < 0.1
        frame = pl.DataFrame(
            {
                "rate_date": [
                    day.strftime("%d/%m/%Y") if flag else day.isoformat() for flag in day_first
                ],
                "currency": list(CURRENCIES),
                "usd_per_unit": [f"{u // RATE_SCALE}.{u % RATE_SCALE:08d}" for u in units],
                "_t_currency": list(CURRENCIES),
                "_t_rate": units / RATE_SCALE,
                "_t_defect": pl.Series([None] * len(CURRENCIES), dtype=pl.Utf8),
            }
        )
        if (day_index + 1) % 3 == 0:  # a source that sometimes lower-cases codes (valid)
            which = int(rng.integers(1, len(CURRENCIES)))
            frame = frame.with_columns(
                currency=pl.when(pl.int_range(pl.len()) == which)
                .then(pl.col("currency").str.to_lowercase())
                .otherwise(pl.col("currency")),
                _t_defect=pl.when(pl.int_range(pl.len()) == which)
                .then(pl.lit("currency_lowercase"))
                .otherwise(pl.col("_t_defect")),
            )
        frame = _with_duplicates(frame, rng, day_index % 2)  # a repeated row every other day
        frame = _placed(frame, self._relative(day, "fx_rates.csv"), 0)
        _write_csv(frame.select("rate_date", "currency", "usd_per_unit"), folder / "fx_rates.csv")

        frame = _settle(
            frame.with_columns(_t_rule=pl.lit(None, pl.Utf8)), "fx_rates", ["_t_currency"]
        )
        out.truth["fx_rates"] = frame.filter("_t_first").select(
            partition_date=pl.lit(day),
            currency=pl.col("_t_currency"),
            usd_per_unit=pl.col("_t_rate"),
            _source_file=pl.col("_source_file"),
            _source_line=pl.col("_source_line"),
        )
        out.quarantine.append(_quarantine_rows(frame, "fx_rates", day))
        self._record_file(
            out,
            day,
            "fx_rates.csv",
            frame,
            _defect_label("_t_defect"),
        )

    # ---------------------------------------------------------------- products
    def _products_day(self, day_index: int, day: date, folder: Path, out: _DayOutput) -> None:
        if self.catalog is None:
            self.catalog = _Catalog.create(self.seed)
        catalog = self.catalog
        rng = _rng(self.seed, day_index, "products")
        if day_index > 0:
            catalog.advance(rng)
        rates = self.fx.array()
        local = _local_cents(
            catalog.usd_cents, rates[catalog.currency], catalog.currency == CURRENCIES.index("JPY")
        )
        style = rng.choice(4, size=N_PRODUCTS, p=_PRICE_STYLE_WEIGHTS)
        lower = rng.random(N_PRODUCTS) < 0.02
        currency = np.array(CURRENCIES)[catalog.currency]
        frame = (
            pl.DataFrame(
                {
                    "_t_pid": np.arange(1, N_PRODUCTS + 1),
                    "product_name": catalog.names,
                    "category": catalog.categories,
                    "_t_cents": local,
                    "_t_style": style,
                    "_t_currency": currency,
                    "_t_rate": rates[catalog.currency] / RATE_SCALE,
                }
            )
            .with_columns(
                _t_defect=pl.when(pl.Series(lower)).then(pl.lit("currency_lowercase")),
            )
            .with_columns(
                product_id=pl.concat_str([pl.lit("P"), _zfill(pl.col("_t_pid"), 5)]),
                list_price=_format_money(
                    pl.col("_t_cents"),
                    pl.col("_t_style"),
                    pl.col("_t_currency").replace_strict(_SYMBOLS, return_dtype=pl.Utf8),
                ),
                currency=pl.when(pl.col("_t_defect").is_not_null())
                .then(pl.col("_t_currency").str.to_lowercase())
                .otherwise(pl.col("_t_currency")),
            )
        )
        dups = _defect_count(_DUPLICATE_ROW_RATE, N_PRODUCTS, day_index, 0)
        frame = _with_duplicates(frame, rng, dups)
        frame = _placed(frame, self._relative(day, "products.csv"), 0)
        _write_csv(
            frame.select("product_id", "product_name", "category", "list_price", "currency"),
            folder / "products.csv",
        )
        frame = _settle(
            frame.with_columns(_t_rule=pl.lit(None, pl.Utf8)), "products", ["product_id"]
        )
        out.truth["products"] = frame.filter("_t_first").select(
            partition_date=pl.lit(day),
            product_id=pl.col("product_id"),
            product_name=pl.col("product_name"),
            category=pl.col("category"),
            list_price_usd=(pl.col("_t_cents") / 100 * pl.col("_t_rate")).round(2),
            _source_file=pl.col("_source_file"),
            _source_line=pl.col("_source_line"),
        )
        out.quarantine.append(_quarantine_rows(frame, "products", day))
        self._record_file(
            out,
            day,
            "products.csv",
            frame,
            _defect_label("_t_defect"),
        )

    # ---------------------------------------------------------------- customers
    def _customers_day(self, day_index: int, day: date, folder: Path, out: _DayOutput) -> None:
        rng = _rng(self.seed, day_index, "customers")
        book = self.customers
        epoch_day = (day - _EPOCH).days
        n_rows = max(4, self.rows_per_day // 5)
        n_new = n_rows if day_index == 0 else round(0.6 * n_rows)
        n_new = min(n_new, CUSTOMER_CAPACITY - book.size)
        pool = np.flatnonzero(book.valid_since >= 0)
        n_update = min(n_rows - n_new, len(pool))
        updated = np.sort(rng.choice(pool, size=n_update, replace=False)) if n_update else pool[:0]
        book.update(rng, updated)
        # the initial load brings customers who signed up before the first day
        back = rng.integers(0, 1000, n_new) if day_index == 0 else np.zeros(n_new, np.int64)
        new = book.add(rng, n_new, epoch_day - back)
        ids = np.concatenate([new, updated])
        seconds = rng.integers(0, 86_400, len(ids))
        by_time = np.lexsort((ids, seconds))  # the export is ordered by updated_at
        ids, seconds = ids[by_time], seconds[by_time]
        n = len(ids)

        kinds = _assign_kinds(
            rng, np.arange(n), [(k, r) for k, r, _ in _CUSTOMER_DEFECTS], n, day_index
        )
        rules = {k: rule for k, _, rule in _CUSTOMER_DEFECTS}
        ts_style = rng.choice(3, size=n, p=_TS_STYLE_WEIGHTS)
        date_day_first = rng.random(n) < 0.2
        latin1 = rng.integers(0, len(_LATIN1_NAMES), n)
        bad_country = rng.integers(0, len(_COUNTRY_NAMES), n)
        bad_segment = rng.integers(0, len(_BAD_SEGMENTS), n)
        frame = pl.DataFrame(
            {
                "_t_id": ids,
                "_t_kind": kinds,
                "_t_ts": _timestamps(day, seconds),
                "_t_style": ts_style,
                "_t_signup": pl.Series(book.signup[ids]).cast(pl.Int32).cast(pl.Date),
                "_t_day_first": date_day_first,
                "_t_country": np.array(_COUNTRIES)[book.country[ids]],
                "_t_segment": np.array(SEGMENTS)[book.segment[ids]],
                "_t_name": pl.select(
                    pl.concat_str(
                        [
                            _names(book.first[ids], _FIRST),
                            pl.lit(" "),
                            _names(book.last[ids], _LAST),
                        ]
                    )
                ).to_series(),
                "_t_latin1": latin1,
                "_t_bad_country": np.array(_COUNTRY_NAMES)[bad_country],
                "_t_bad_segment": np.array(_BAD_SEGMENTS)[bad_segment],
            }
        ).with_columns(_t_email=book.emails(ids))
        kind = pl.col("_t_kind")
        frame = frame.with_columns(
            _t_customer_id=_customer_id(pl.col("_t_id")),
            customer_id=pl.when(kind == "missing_customer_id")
            .then(None)
            .otherwise(_customer_id(pl.col("_t_id"))),
            email=pl.col("_t_email"),
            # latin-1 names are swapped in as bytes after the CSV is encoded (see _write_customers)
            full_name=pl.when(kind == "latin1_full_name")
            .then(
                pl.concat_str(
                    [pl.lit("@@LATIN1:"), pl.col("_t_latin1").cast(pl.Utf8), pl.lit("@@")]
                )
            )
            .otherwise(pl.col("_t_name")),
            country=pl.when(kind == "country_invalid")
            .then(pl.col("_t_bad_country"))
            .when(kind == "country_lowercase")
            .then(pl.col("_t_country").str.to_lowercase())
            .otherwise(pl.col("_t_country")),
            segment=pl.when(kind == "segment_invalid")
            .then(pl.col("_t_bad_segment"))
            .when(kind == "segment_capitalised")
            .then(pl.col("_t_segment").str.to_titlecase())
            .otherwise(pl.col("_t_segment")),
            signup_date=pl.when(pl.col("_t_day_first"))
            .then(pl.col("_t_signup").dt.strftime("%d/%m/%Y"))
            .otherwise(pl.col("_t_signup").dt.strftime("%Y-%m-%d")),
            updated_at=pl.when(kind == "updated_at_unparseable")
            .then(pl.lit("not a date"))
            .otherwise(_format_ts(pl.col("_t_ts"), pl.col("_t_style"))),
            _t_rule=kind.replace_strict(rules, default=None, return_dtype=pl.Utf8),
        )
        dups = _defect_count(_DUPLICATE_ROW_RATE * 2, n, day_index, 1)
        frame = _with_duplicates(frame, rng, dups)
        frame = _placed(frame, self._relative(day, "customers.csv"), 0)
        columns = [
            "customer_id",
            "email",
            "full_name",
            "country",
            "segment",
            "signup_date",
            "updated_at",
        ]
        _write_customers(frame.select(columns), folder / "customers.csv")

        frame = _settle(frame, "customers", ["customer_id"])
        published = frame.filter("_t_first")
        newly_valid = published["_t_id"].to_numpy()
        book.valid_since[newly_valid] = np.where(
            book.valid_since[newly_valid] < 0, day_index, book.valid_since[newly_valid]
        )
        out.truth["customers"] = published.select(
            partition_date=pl.lit(day),
            customer_id=pl.col("customer_id"),
            email=pl.col("_t_email"),
            full_name=pl.col("_t_name"),
            country=pl.col("_t_country"),
            segment=pl.col("_t_segment"),
            signup_date=pl.col("_t_signup"),
            updated_at=_truth_ts(pl.col("_t_ts"), pl.col("_t_style")),
            _source_file=pl.col("_source_file"),
            _source_line=pl.col("_source_line"),
        )
        out.quarantine.append(_quarantine_rows(frame, "customers", day))
        self._record_file(
            out,
            day,
            "customers.csv",
            frame,
            _defect_label("_t_kind"),
        )

    # ---------------------------------------------------------------- orders
    def _orders_day(self, day_index: int, day: date, folder: Path, out: _DayOutput) -> None:
        assert self.catalog is not None
        rng = _rng(self.seed, day_index, "orders")
        n_lines = self.rows_per_day
        sizes = rng.integers(1, 6, size=n_lines)
        cumulative = np.cumsum(sizes)
        n_orders = int(np.searchsorted(cumulative, n_lines)) + 1
        sizes = sizes[:n_orders].copy()
        sizes[-1] -= int(cumulative[n_orders - 1] - n_lines)

        pool = self.customers.orderable(day_index)
        if len(pool) == 0:
            raise RuntimeError(f"{day}: no valid customer delivered yet to place orders for")
        active = rng.choice(pool, size=max(1, min(len(pool), n_orders // 2)), replace=False)
        customer = active[rng.integers(0, len(active), n_orders)]
        seconds = _session_times(_rng(self.seed, day_index, "times"), customer)
        by_time = np.lexsort((customer, seconds))
        customer, seconds = customer[by_time], seconds[by_time]
        first_id = self.next_order_id
        self.next_order_id += n_orders

        specs = [(d.kind, d.rate) for d in _ORDER_DEFECTS]
        order_kind = _assign_kinds(rng, np.arange(n_orders), specs, n_orders, day_index)
        other_day = np.where(
            rng.random(n_orders) < 0.7,
            -4 * 3600 + rng.integers(0, 4 * 3600, n_orders),  # late delivery from yesterday
            86_400 + rng.integers(0, 2 * 3600, n_orders),  # stamped tomorrow (clock skew)
        )
        moved = (order_kind == "order_ts_other_day").fill_null(False).to_numpy()
        seconds = np.where(moved, other_day, seconds)
        currency = rng.choice(len(CURRENCIES), n_orders, p=_ORDER_CURRENCY_WEIGHTS)
        orders = pl.DataFrame(
            {
                "_t_order": np.arange(n_orders),
                "_t_order_id": np.arange(first_id, first_id + n_orders),
                "_t_customer": customer,
                "_t_order_kind": order_kind,
                "_t_ts": _timestamps(day, seconds),
                "_t_ts_style": rng.choice(3, n_orders, p=_TS_STYLE_WEIGHTS),
                "_t_currency": np.array(CURRENCIES)[currency],
                "_t_currency_index": currency,
                "status": np.array(STATUSES)[rng.choice(4, n_orders, p=_STATUS_WEIGHTS)],
                "_t_unknown": rng.integers(900_000, 1_000_000, n_orders),
                "_t_has_coupon": rng.random(n_orders) < 0.1,
                "_t_coupon": np.array(_COUPONS)[rng.integers(0, len(_COUPONS), n_orders)],
            }
        )
        kind = pl.col("_t_order_kind")
        unknown = kind == "unknown_customer"
        orders = (
            orders.lazy()
            .with_columns(
                _t_written_order_id=pl.when(kind == "missing_order_id")
                .then(None)
                .otherwise(pl.concat_str([pl.lit("O"), _zfill(pl.col("_t_order_id"), 9)])),
                _t_customer_id=pl.when(unknown)
                .then(pl.concat_str([pl.lit("C"), pl.col("_t_unknown").cast(pl.Utf8)]))
                .otherwise(_customer_id(pl.col("_t_customer"))),
                _t_email=pl.when(unknown)
                .then(
                    pl.concat_str(
                        [
                            pl.lit("guest"),
                            pl.col("_t_unknown").cast(pl.Utf8),
                            pl.lit("@example.com"),
                        ]
                    )
                )
                .otherwise(self.customers.emails(customer)),
                _t_ts_text=pl.when(kind == "order_ts_unparseable")
                .then(pl.lit("not a date"))
                .when(kind == "order_ts_empty")
                .then(None)
                .otherwise(_format_ts(pl.col("_t_ts"), pl.col("_t_ts_style"))),
                _t_ts_truth=_truth_ts(pl.col("_t_ts"), pl.col("_t_ts_style")),
                _t_currency_text=pl.when(kind == "unknown_currency")
                .then(pl.lit("XXX"))
                .when(kind == "currency_lowercase")
                .then(pl.col("_t_currency").str.to_lowercase())
                .otherwise(pl.col("_t_currency")),
            )
            .with_columns(
                _t_customer_text=pl.when(kind == "missing_customer_id")
                .then(None)
                .otherwise(pl.col("_t_customer_id")),
            )
            .collect()
        )

        lines = self._lines(rng, day_index, orders, sizes)
        lines = _with_duplicates(
            lines, rng, _defect_count(_DUPLICATE_ROW_RATE, n_lines, day_index, 0)
        )
        columns = _order_columns(day_index)
        main = _placed(lines, self._relative(day, "orders.csv"), 0)
        _write_csv(main.select(columns), folder / "orders.csv")
        placed = [main]
        if day_index % 4 == 2:  # some days the source re-sends part of the file
            size = max(1, round(_RESENT_SHARE * lines.height))
            offset = int(rng.integers(0, lines.height - size + 1))
            resent = _placed(lines.slice(offset, size), self._relative(day, "orders_resent.csv"), 1)
            _write_csv(resent.select(columns), folder / "orders_resent.csv")
            placed.append(resent)
        raw = pl.concat(placed).sort("_t_file_rank", "_source_line")
        self._orders_truth(day, raw, out)
        self._record_file(
            out,
            day,
            "orders.csv",
            main,
            pl.when(pl.col("_t_copy"))
            .then(pl.lit("duplicate_row"))
            .otherwise(pl.coalesce("_t_order_kind", "_t_line_kind")),
        )
        if len(placed) > 1:
            self._record_file(out, day, "orders_resent.csv", placed[1], pl.lit("resent_row"))

    def _lines(
        self, rng: np.random.Generator, day_index: int, orders: pl.DataFrame, sizes: np.ndarray
    ) -> pl.DataFrame:
        """Order lines (one row each) with the delivered text columns and the clean values."""
        assert self.catalog is not None
        n_lines = int(sizes.sum())
        order_of_line = np.repeat(np.arange(len(sizes)), sizes)
        starts = np.cumsum(sizes) - sizes
        line_no = np.arange(n_lines) - np.repeat(starts, sizes) + 1
        product = rng.choice(N_PRODUCTS, n_lines, p=self.catalog.popularity)
        quantity = np.minimum(rng.geometric(0.5, n_lines), 12)
        currency = orders["_t_currency_index"].to_numpy()[order_of_line]
        rates = self.fx.array()
        cents = _local_cents(
            self.catalog.usd_cents[product], rates[currency], currency == CURRENCIES.index("JPY")
        )

        # Line defects only on lines of untouched orders, so each record has a single cause.
        order_kind = orders["_t_order_kind"].gather(order_of_line)
        untouched = order_kind.is_null() | order_kind.is_in(
            ["unknown_customer", "currency_lowercase"]
        )
        eligible = np.flatnonzero(untouched.to_numpy())
        specs = [(k, r) for k, r, _ in _LINE_DEFECTS]
        if day_index == DECIMAL_QUANTITY_DAY:
            specs.append(_FRACTIONAL_QUANTITY[:2])
        line_kind = _assign_kinds(rng, eligible, specs, n_lines, day_index)

        def has(kind: str) -> np.ndarray:
            return (line_kind == kind).fill_null(False).to_numpy()

        quantity = np.where(has("quantity_zero"), 0, quantity)
        quantity = np.where(has("quantity_huge"), 1000, quantity)
        cents = np.where(has("unit_price_negative"), -np.maximum(cents, 1), cents)
        huge = rng.integers(10_000_100, 50_000_000, n_lines)
        cents = np.where(has("unit_price_huge"), huge, cents)
        style = rng.choice(4, n_lines, p=_PRICE_STYLE_WEIGHTS)

        rules = {k: rule for k, _, rule in (*_LINE_DEFECTS, _FRACTIONAL_QUANTITY)}
        order_rules = {d.kind: d.line_rule for d in _ORDER_DEFECTS if d.line_rule}
        frame = orders[order_of_line].with_columns(
            _t_line_no=pl.Series(line_no, dtype=pl.Int32),
            _t_product=pl.Series(product + 1),
            _t_quantity=pl.Series(quantity, dtype=pl.Int32),
            _t_cents=pl.Series(cents),
            _t_rate=pl.Series(rates[currency] / RATE_SCALE),
            _t_price_style=pl.Series(style),
            _t_line_kind=line_kind,
        )
        line_kind_col = pl.col("_t_line_kind")
        quantity_text = pl.col("_t_quantity").cast(pl.Utf8)
        if day_index == DECIMAL_QUANTITY_DAY:
            quantity_text = pl.concat_str(
                [
                    quantity_text,
                    pl.when(line_kind_col == "quantity_fractional")
                    .then(pl.lit(".5"))
                    .otherwise(pl.lit(".0")),
                ]
            )
        symbol = (
            pl.col("_t_currency_text")
            .str.to_uppercase()
            .replace_strict(_SYMBOLS, default=pl.lit(""), return_dtype=pl.Utf8)
        )
        return (
            frame.lazy()
            .with_columns(
                order_id=pl.col("_t_written_order_id"),
                line_no=pl.col("_t_line_no").cast(pl.Utf8),
                order_ts=pl.col("_t_ts_text"),
                customer_id=pl.col("_t_customer_text"),
                customer_email=pl.col("_t_email"),
                product_id=pl.concat_str([pl.lit("P"), _zfill(pl.col("_t_product"), 5)]),
                quantity=quantity_text,
                unit_price=_format_money(pl.col("_t_cents"), pl.col("_t_price_style"), symbol),
                currency=pl.col("_t_currency_text"),
                coupon_code=pl.when("_t_has_coupon").then("_t_coupon"),
                _t_rule=pl.coalesce(
                    line_kind_col.replace_strict(rules, default=None, return_dtype=pl.Utf8),
                    pl.col("_t_order_kind").replace_strict(
                        order_rules, default=None, return_dtype=pl.Utf8
                    ),
                ),
            )
            .with_columns(price=pl.col("unit_price"))
            .collect()
        )

    def _orders_truth(self, day: date, raw: pl.DataFrame, out: _DayOutput) -> None:
        """Expected order_lines and orders for one day from the placed raw rows (file order)."""
        needed = [
            "order_id",
            "product_id",
            "status",
            "_source_file",
            "_source_line",
            "_t_line_no",
            "_t_quantity",
            "_t_cents",
            "_t_rate",
            "_t_rule",
            "_t_order_kind",
            "_t_customer_text",
            "_t_ts_truth",
            "_t_currency",
        ]
        lines = _settle(
            raw.lazy().select(needed), "order_lines", ["order_id", "_t_line_no"]
        ).collect()
        published = (
            lines.lazy()
            .filter("_t_first")
            .select(
                partition_date=pl.lit(day),
                order_id=pl.col("order_id"),
                line_no=pl.col("_t_line_no"),
                product_id=pl.col("product_id"),
                quantity=pl.col("_t_quantity"),
                unit_price_local=pl.col("_t_cents") / 100,
                unit_price_usd=(pl.col("_t_cents") / 100 * pl.col("_t_rate")).round(2),
                _source_file=pl.col("_source_file"),
                _source_line=pl.col("_source_line"),
            )
            .with_columns(line_amount_usd=(pl.col("quantity") * pl.col("unit_price_usd")).round(2))
            .collect()
        )
        out.truth["order_lines"] = published.select(
            "partition_date",
            "order_id",
            "line_no",
            "product_id",
            "quantity",
            "unit_price_local",
            "unit_price_usd",
            "line_amount_usd",
            "_source_file",
            "_source_line",
        )
        out.quarantine.append(_quarantine_rows(lines, "order_lines", day))

        keys = published.select("order_id", "line_no").with_columns(_t_published=pl.lit(True))
        totals = published.group_by("order_id").agg(
            order_total_local=(pl.col("quantity") * pl.col("unit_price_local")).sum().round(2),
            order_total_usd=pl.col("line_amount_usd").sum().round(2),
            line_count=pl.len().cast(pl.Int32),
        )
        header_rules = {d.kind: d.header_rules for d in _ORDER_DEFECTS}
        first_rule = {k: r[0] for k, r in header_rules.items() if r}
        second_rule = {k: r[1] for k, r in header_rules.items() if len(r) > 1}
        headers = (
            lines.lazy()
            .join(
                keys.lazy(),
                left_on=["order_id", "_t_line_no"],
                right_on=["order_id", "line_no"],
                how="left",
                maintain_order="left",
            )
            .group_by("order_id", maintain_order=True)
            .agg(
                pl.col(
                    "_source_file",
                    "_source_line",
                    "_t_order_kind",
                    "_t_customer_text",
                    "_t_ts_truth",
                    "status",
                    "_t_currency",
                ).first(),
                _t_complete=pl.col("_t_published").fill_null(False).all(),
            )
            .join(totals.lazy(), on="order_id", how="left", maintain_order="left")
            .collect()
        )
        kind = pl.col("_t_order_kind")
        headers = headers.with_columns(
            _t_failed=pl.concat_list(
                [
                    kind.replace_strict(first_rule, default=None, return_dtype=pl.Utf8),
                    kind.replace_strict(second_rule, default=None, return_dtype=pl.Utf8),
                    pl.when(pl.col("_t_complete")).then(None).otherwise(pl.lit(LINES_COMPLETE)),
                ]
            ).list.drop_nulls()
        )
        out.truth["orders"] = headers.filter(pl.col("_t_failed").list.len() == 0).select(
            partition_date=pl.lit(day),
            order_id=pl.col("order_id"),
            customer_id=pl.col("_t_customer_text"),
            order_ts=pl.col("_t_ts_truth"),
            order_date=pl.col("_t_ts_truth").dt.date(),
            status=pl.col("status"),
            currency=pl.col("_t_currency"),
            order_total_local=pl.col("order_total_local"),
            order_total_usd=pl.col("order_total_usd"),
            line_count=pl.col("line_count"),
            _source_file=pl.col("_source_file"),
            _source_line=pl.col("_source_line"),
        )
        out.quarantine.append(_quarantine_rows(headers, "orders", day))


def _session_times(rng: np.random.Generator, customer: np.ndarray) -> np.ndarray:
    """Seconds after midnight per order. A customer's orders on a day follow each other with
    gaps that are often under 30 minutes (a session) and otherwise up to a few hours."""
    n = len(customer)
    tie = rng.random(n)
    short = rng.random(n) < 0.5
    gap = np.where(short, rng.integers(60, 1800, n), rng.integers(1800, 6 * 3600, n))
    start = rng.random(n)
    order = np.lexsort((tie, customer))  # each customer's orders together
    sorted_customer = customer[order]
    group_start = np.r_[True, sorted_customer[1:] != sorted_customer[:-1]]
    gap_sorted = np.where(group_start, 0, gap[order])
    running = np.cumsum(gap_sorted)
    group_id = np.cumsum(group_start) - 1
    offset = running - running[np.flatnonzero(group_start)][group_id]
    span = np.maximum.reduceat(offset, np.flatnonzero(group_start))[group_id]
    fits = span <= 86_399
    seconds_sorted = np.where(
        fits,
        np.floor(start[order] * (86_399 - np.minimum(span, 86_399))).astype(np.int64) + offset,
        offset * 86_399 // np.maximum(span, 1),  # squeeze the rare overfull day into the day
    )
    seconds = np.empty(n, dtype=np.int64)
    seconds[order] = seconds_sorted
    return seconds


def _order_columns(day_index: int) -> list[str]:
    price = "price" if day_index >= PRICE_RENAMED_FROM_DAY else "unit_price"
    columns = [
        "order_id",
        "line_no",
        "order_ts",
        "customer_id",
        "customer_email",
        "product_id",
        "quantity",
        price,
        "currency",
        "status",
    ]
    if day_index >= COUPON_FROM_DAY:
        columns.append("coupon_code")
    return columns


_LATIN1_TOKEN = re.compile(rb"@@LATIN1:(\d+)@@")


def _write_customers(frame: pl.DataFrame, path: Path) -> None:
    """UTF-8 CSV except the injected names, which are written as latin-1 bytes."""
    encoded = frame.write_csv().encode("utf-8")
    path.write_bytes(
        _LATIN1_TOKEN.sub(lambda m: _LATIN1_NAMES[int(m.group(1))].encode("latin-1"), encoded)
    )


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def generate(
    landing_root: Path,
    truth_root: Path,
    start: date,
    days: int,
    rows_per_day: int,
    seed: int = 42,
) -> GenerationSummary:
    """Write ``days`` daily drops from ``start`` under ``<landing_root>/commerce/<day>/`` and the
    ground truth under ``<truth_root>/commerce/`` (one parquet per silver dataset plus
    ``quarantine.parquet``), replacing what an earlier run wrote for the same days."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if rows_per_day < 1:
        raise ValueError(f"rows_per_day must be >= 1, got {rows_per_day}")
    landing_root, truth_root = Path(landing_root), Path(truth_root)
    generator = _Generator(
        landing_root=landing_root, start=start, rows_per_day=rows_per_day, seed=seed
    )
    files: list[FileSummary] = []
    truth: dict[str, list[pl.DataFrame]] = {name: [] for name in DATASETS}
    quarantine: list[pl.DataFrame] = []
    for day_index in range(days):
        output = generator.day(day_index)
        files.extend(output.files)
        for name, frame in output.truth.items():
            truth[name].append(frame)
        quarantine.extend(output.quarantine)

    target = truth_root / DOMAIN
    target.mkdir(parents=True, exist_ok=True)
    published: dict[str, int] = {}
    for name, frames in truth.items():
        frame = pl.concat(frames, how="vertical")
        frame.write_parquet(target / f"{name}.parquet")
        published[name] = frame.height
    rejected = pl.concat(quarantine, how="vertical").sort(
        "dataset", "partition_date", "source_file", "source_line"
    )
    rejected.write_parquet(target / "quarantine.parquet")
    counts = rejected["dataset"].value_counts()
    return GenerationSummary(
        landing_root=landing_root,
        truth_root=truth_root,
        start=start,
        days=days,
        rows_per_day=rows_per_day,
        seed=seed,
        files=tuple(files),
        published=published,
        quarantined=dict(zip(counts["dataset"], counts["count"], strict=True)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assets.commerce.generator",
        description="Generate seeded commerce CSV drops and their ground truth.",
    )
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rows-per-day", type=int, default=300, help="order lines per day")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--home", type=Path, default=None, help="data home (default: settings)")
    args = parser.parse_args(argv)
    settings = Settings(home=args.home.resolve()) if args.home else get_settings()
    summary = generate(
        settings.landing, settings.truth, args.start, args.days, args.rows_per_day, args.seed
    )
    print(summary.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
