"""From log records to typed rows, and the rules that send a record to quarantine.

A malformed record (not JSON, not an object, a value of the wrong type, two lines in one record)
must not fail its batch: the batch would fail again on every retry and the stream would stop
behind one bad record. So the whole batch is parsed in one call (the fast path), and only when
that fails is the batch split in halves, recursively, until every bad record stands alone: a
batch with one bad record costs about three parses instead of one, and every record either
parses or is quarantined with the parser's message. A record that parses still has to pass the
row rules below; the failures go to ``payments/silver/transactions_quarantine`` with the rule,
every rule it failed, a reason naming the log position and value, and the raw record.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import polars as pl

RAW_SCHEMA = {
    "event_id": pl.String,
    "user_id": pl.String,
    "merchant_id": pl.String,
    "amount": pl.Float64,
    "currency": pl.String,
    "country": pl.String,
    "device_id": pl.String,
    "event_time": pl.String,
}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
PARSE_ERROR = "parse_error"
"""Column of the parsed frame: the parser's message for a malformed record, else null."""

_RULE_PREFIX = "payments.silver.transactions"


def _rules() -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(rule id, failure expression, reason expression) in the order the first failure names
    the row's rule. Reads the parsed columns plus ``event_ts``."""
    required = [
        (
            f"{_RULE_PREFIX}.{column}.required",
            pl.col(column).is_null(),
            pl.lit(f"{column} is missing"),
        )
        for column in ("event_id", "user_id", "merchant_id", "currency", "country")
    ]
    return [
        (
            f"{_RULE_PREFIX}.record.parse",
            pl.col(PARSE_ERROR).is_not_null(),
            pl.lit("unparseable record: ") + pl.col(PARSE_ERROR),
        ),
        *required,
        (
            f"{_RULE_PREFIX}.amount.positive",
            pl.col("amount").is_null() | (pl.col("amount") <= 0),
            pl.lit("amount ") + pl.col("amount").cast(pl.String).fill_null("null") + " is not > 0",
        ),
        (
            f"{_RULE_PREFIX}.event_time.format",
            pl.col("event_ts").is_null(),
            pl.lit("event_time ")
            + pl.col("event_time").fill_null("null")
            + f" is not ISO-8601 UTC ({TIME_FORMAT})",
        ),
        (
            f"{_RULE_PREFIX}.currency.pattern",
            ~pl.col("currency").str.contains(r"^[A-Z]{3}$").fill_null(True),
            pl.lit("currency ") + pl.col("currency") + " is not ^[A-Z]{3}$",
        ),
        (
            f"{_RULE_PREFIX}.country.pattern",
            ~pl.col("country").str.contains(r"^[A-Z]{2}$").fill_null(True),
            pl.lit("country ") + pl.col("country") + " is not ^[A-Z]{2}$",
        ),
    ]


RULE_IDS = tuple(rule for rule, _, _ in _rules())


def valid_expr() -> pl.Expr:
    """True where the row passes every rule: the one expression every row needs (the verdict
    columns are built for the rejected rows only)."""
    return ~pl.any_horizontal([fails for _, fails, _ in _rules()])


def verdict_columns() -> list[pl.Expr]:
    """``is_valid``, ``failed_rules`` (every rule the row fails), ``rule_id`` and ``reason``
    (of the first failing rule, prefixed with the log position)."""
    rules = _rules()
    failed = pl.concat_list(
        [pl.when(fails).then(pl.lit(rule)).otherwise(None) for rule, fails, _ in rules]
    ).list.drop_nulls()
    first_rule = pl.when(rules[0][1]).then(pl.lit(rules[0][0]))
    first_reason = pl.when(rules[0][1]).then(rules[0][2])
    for rule, fails, reason in rules[1:]:
        first_rule = first_rule.when(fails).then(pl.lit(rule))
        first_reason = first_reason.when(fails).then(reason)
    position = pl.format("p{}@{}: ", pl.col("log_partition"), pl.col("log_offset"))
    return [
        failed.alias("failed_rules"),
        first_rule.otherwise(None).alias("rule_id"),
        (position + first_reason.otherwise(None)).alias("reason"),
    ]


@dataclass(frozen=True)
class PackedRecords:
    """The records of a batch back to back, and where each starts: raw bytes stay in one
    buffer; only quarantined records are ever cut out of it."""

    data: bytes
    starts: np.ndarray
    """Start of record i; ``starts[-1]`` is the end of the last one (len = records + 1)."""

    def __len__(self) -> int:
        return len(self.starts) - 1

    def record(self, i: int) -> bytes:
        return self.data[int(self.starts[i]) : int(self.starts[i + 1])]

    def text(self, indexes: list[int]) -> list[str]:
        return [self.record(i).decode("utf-8", errors="replace") for i in indexes]


def parse_records(records: PackedRecords) -> pl.DataFrame:
    """``RAW_SCHEMA`` plus ``PARSE_ERROR``: one row per record, in order, a malformed record as
    a row of nulls with the parser's message."""
    frames = list(_parse(records, 0, len(records)))
    if not frames:
        return pl.DataFrame(schema={**RAW_SCHEMA, PARSE_ERROR: pl.String})
    return pl.concat(frames, how="vertical")


def _parse(records: PackedRecords, lo: int, hi: int) -> list[pl.DataFrame]:
    if hi <= lo:
        return []
    body = records.data[int(records.starts[lo]) : int(records.starts[hi])]
    error: str | None = None
    try:
        frame = pl.read_ndjson(io.BytesIO(body), schema=RAW_SCHEMA)
    except pl.exceptions.ComputeError as exc:
        error = str(exc).splitlines()[0]
    else:
        # A record without its newline merges with the next, one holding two lines splits:
        # either way the rows no longer match the records one to one.
        if frame.height == hi - lo:
            return [frame.with_columns(pl.lit(None, dtype=pl.String).alias(PARSE_ERROR))]
        error = f"{frame.height} JSON lines in {hi - lo} record(s)"
    if hi - lo == 1:
        empty = pl.DataFrame({name: [None] for name in RAW_SCHEMA}, schema=RAW_SCHEMA).with_columns(
            pl.lit(error, dtype=pl.String).alias(PARSE_ERROR)
        )
        return [empty]
    middle = (lo + hi) // 2
    return _parse(records, lo, middle) + _parse(records, middle, hi)
