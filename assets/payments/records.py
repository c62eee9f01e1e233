"""From log records to typed rows, and the rules that send a record to quarantine.

A malformed record (not JSON, not an object, a value of the wrong type, two lines in one record)
must not fail its batch: the batch would fail again on every retry and the stream would stop
behind one bad record. So the whole batch is parsed in one call (the fast path), and only when
that fails is the batch split in halves, recursively, until every bad record stands alone: a
batch with one bad record costs about three parses instead of one, and every record either
parses or is quarantined with the parser's message. A record that parses still has to pass the
row rules of the silver contract (``contracts/payments/transactions.yaml``: ``record_rules``
compiles them once per contract, the same expressions the platform's quarantine split uses);
the failures go to ``payments/silver/transactions_quarantine`` with the rule id, every rule it
failed, a reason naming the log position and value, and the raw record.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
import polars as pl
from polars.expr.whenthen import ChainedThen, Then

from data_products.lib.contracts import Contract, ContractError
from data_products.lib.contracts.expressions import failure_expr, raw_column, reason_expr

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
EVENT_TIME_RAW = raw_column("event_time")
"""The delivered event time text, next to the typed ``event_time`` (typed-frame convention)."""

PARSE_RULE = "transactions.record.parse"
"""The stream's one platform rule: a record that is not a JSON object of the contract's types.
It has no contract column to hang on (the contract describes parsed rows), so it is the stream's;
every other row rule is the silver contract's (``contracts/payments/transactions.yaml``)."""

SET_BY_STREAM = frozenset(
    {"event_hour", "log_partition", "log_offset", "_batch_id", "_ingested_at"}
)
"""Silver columns the stream sets itself (derived or load-time), never delivered: a record cannot
break their rules, so they are not record rules; the schema check verifies them on the rows
written."""

BATCH_COLUMNS = frozenset({*RAW_SCHEMA, EVENT_TIME_RAW, PARSE_ERROR, "log_partition", "log_offset"})
"""The classified frame the record rules read (``classify``): the delivered fields typed
(``event_time`` a timestamp, its delivered text in ``event_time__raw``), the parser's message
and the log position."""


@dataclass(frozen=True)
class RecordRules:
    """The silver contract's row rules as polars expressions over the classified frame, in
    contract order after the parse rule, built once per contract (``record_rules``).

    Only ``error`` rules decide (a ``warning`` rule never removes a row). ``valid_expr`` is the
    one expression every row pays for; ``verdict_columns`` (every failed rule, the first one and
    its reason) is evaluated on the rejected rows only."""

    ids: tuple[str, ...]
    fails: tuple[pl.Expr, ...]
    reasons: tuple[pl.Expr, ...]

    def valid_expr(self) -> pl.Expr:
        """True where the row passes every rule."""
        return ~pl.any_horizontal(self.fails)

    def verdict_columns(self) -> list[pl.Expr]:
        """``failed_rules`` (every rule the row fails), ``rule_id`` and ``reason`` (of the first
        failing rule, prefixed with the log position ``p<partition>@<offset>``)."""
        rules = list(zip(self.ids, self.fails, self.reasons, strict=True))
        failed = pl.concat_list(
            [pl.when(fails).then(pl.lit(rule)).otherwise(None) for rule, fails, _ in rules]
        ).list.drop_nulls()
        first_rule: Then | ChainedThen = pl.when(rules[0][1]).then(pl.lit(rules[0][0]))
        first_reason: Then | ChainedThen = pl.when(rules[0][1]).then(rules[0][2])
        for rule, fails, reason in rules[1:]:
            first_rule = first_rule.when(fails).then(pl.lit(rule))
            first_reason = first_reason.when(fails).then(reason)
        position = pl.format("p{}@{}: ", pl.col("log_partition"), pl.col("log_offset"))
        return [
            failed.alias("failed_rules"),
            first_rule.otherwise(None).alias("rule_id"),
            (position + first_reason.otherwise(None)).alias("reason"),
        ]


@functools.cache
def record_rules(contract: Contract) -> RecordRules:
    """The record rules of ``contract`` (cached per compiled contract: once per process).

    Raises ``ContractError`` for a row rule on a column the stream neither receives nor sets:
    a rule the stream cannot evaluate must not be skipped silently."""
    ids, fails, reasons = (
        [PARSE_RULE],
        [pl.col(PARSE_ERROR).is_not_null()],
        [
            pl.lit(f"{PARSE_RULE}: not a JSON object of the contract's types: ")
            + pl.col(PARSE_ERROR)
        ],
    )
    for rule in contract.row_rules():
        if rule.severity != "error":
            continue
        needed = [column for column, _ in rule.kind_spec.inputs(rule)]
        if any(column in SET_BY_STREAM for column in needed):
            continue
        missing = [column for column in needed if column not in BATCH_COLUMNS]
        if missing:
            raise ContractError(
                f"{contract.path}: rule {rule.id} reads {missing[0]!r}, which payments records "
                f"do not carry (they carry {', '.join(sorted(RAW_SCHEMA))})"
            )
        ids.append(rule.id)
        fails.append(failure_expr(rule, BATCH_COLUMNS))
        reasons.append(reason_expr(rule, BATCH_COLUMNS))
    return RecordRules(tuple(ids), tuple(fails), tuple(reasons))


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
