"""Each row rule as polars expressions: whether a row fails, what value to show, and why.

One expression per rule serves both the quarantine split (on the typed frame, which still has the
raw text) and the pandera schema (on the published frame, typed values only), so the two can never
disagree about what a rule means. Everything here is vectorised: no Python runs per row.

Typed-frame convention (produced by each domain's transforms):
``<column>`` typed value; ``<column>__raw`` the delivered text (optional); ``_<flag>`` booleans the
transform computed (``_known_rate``, ``_lines_complete``, ``_in_partition``); ``_raw_record`` JSON
of the delivered values; ``partition_date``, ``_source_file``, ``_source_line`` lineage.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import polars as pl

from data_products.lib.contracts.model import DELIVERED_PREFIX, RAW_SUFFIX, Rule, _number

if TYPE_CHECKING:
    import pandera.polars as pa

    from data_products.lib.contracts.model import Contract

REPLACEMENT_CHARACTER = "\ufffd"
"""What UTF-8-lossy decoding puts where the delivered bytes were not UTF-8."""


def raw_column(column: str) -> str:
    return f"{column}{RAW_SUFFIX}"


def _text(expr: pl.Expr) -> pl.Expr:
    """A value as display text; ``null`` spelled out so reasons never collapse to null."""
    return expr.cast(pl.String).fill_null("null")


def _raw_is_empty(rule: Rule, raw: str) -> pl.Expr:
    text = pl.col(raw).cast(pl.String)
    return text.is_null() | text.str.strip_chars().is_in(list(rule.missing_values))


def failure_expr(rule: Rule, columns: Collection[str]) -> pl.Expr:
    """True where the row breaks ``rule``, False otherwise (never null).

    ``columns`` are the frame's columns: rules look at the raw text when the frame has it (the
    typed frame) and at the typed value otherwise (the published frame).
    """
    if rule.kind == "flag":
        # A flag the transform could not establish counts as failed: publish only what is proven.
        return pl.col(str(rule.flag)).cast(pl.Boolean).not_().fill_null(True)
    if rule.column is None:
        raise ValueError(f"rule {rule.id}: a {rule.kind} rule needs a column")
    value = pl.col(rule.column)
    raw = raw_column(rule.column)
    has_raw = raw in columns
    if rule.kind == "required":
        return _raw_is_empty(rule, raw) if has_raw else value.is_null()
    if rule.kind == "type":
        if not has_raw:
            return pl.lit(False)
        return (~_raw_is_empty(rule, raw) & value.is_null()).fill_null(False)
    if rule.kind == "pattern":
        return value.cast(pl.String).str.contains(str(rule.pattern)).not_().fill_null(False)
    if rule.kind == "valid_values":
        return value.is_in(list(rule.values)).not_().fill_null(False)
    if rule.kind == "range":
        failing = pl.lit(False)
        if rule.minimum is not None:
            failing = failing | (
                value <= rule.minimum if rule.exclusive_minimum else value < rule.minimum
            )
        if rule.maximum is not None:
            failing = failing | (
                value >= rule.maximum if rule.exclusive_maximum else value > rule.maximum
            )
        return failing.fill_null(False)
    if rule.kind == "encoding":
        text = pl.col(raw) if has_raw else value
        return (
            text.cast(pl.String).str.contains(REPLACEMENT_CHARACTER, literal=True).fill_null(False)
        )
    raise ValueError(f"rule {rule.id}: {rule.kind} is not evaluated per row")


def value_expr(rule: Rule, columns: Collection[str]) -> pl.Expr:
    """The value a reader needs to see: the delivered text for parsing rules, else the typed one."""
    if rule.column is None or rule.column not in columns:
        return pl.lit(None, dtype=pl.String)
    raw = raw_column(rule.column)
    # Parsing, encoding and flag rules are about what was delivered: show the delivered text.
    if rule.kind in ("required", "type", "encoding", "flag") and raw in columns:
        return pl.col(raw).cast(pl.String)
    return pl.col(rule.column).cast(pl.String)


def reason_expr(rule: Rule, columns: Collection[str]) -> pl.Expr:
    """``<rule id>: <column>=<value> <what is wrong> (<file> line <n>)`` for every row."""
    column = rule.column or ""
    value = _text(value_expr(rule, columns))
    said: list[pl.Expr | str]
    if rule.kind == "required":
        said = [f"{column} is empty"]
    elif rule.kind == "type":
        said = [f"{column}=", value, f" is not a valid {rule.expected_type}"]
    elif rule.kind == "pattern":
        said = [f"{column}=", value, f" does not match {rule.pattern}"]
    elif rule.kind == "valid_values":
        allowed = ", ".join(str(v) for v in rule.values)
        said = [f"{column}=", value, f" not in [{allowed}]"]
    elif rule.kind == "range":
        said = [f"{column}=", value, " ", _range_words(rule)]
    elif rule.kind == "encoding":
        said = [f"{column}=", value, " has undecodable bytes (U+FFFD)"]
    elif rule.kind == "flag":
        what = rule.message or f"{rule.flag} is false"
        said = [f"{column}=", value, f": {what}"] if rule.column else [what]
    else:
        raise ValueError(f"rule {rule.id}: {rule.kind} has no per-row reason")
    return pl.concat_str([pl.lit(f"{rule.id}: "), *(_lit(p) for p in said), location_expr(columns)])


def _range_words(rule: Rule) -> str:
    if rule.minimum is not None and rule.maximum is not None:
        left = "(" if rule.exclusive_minimum else "["
        right = ")" if rule.exclusive_maximum else "]"
        return f"outside {left}{_number(rule.minimum)}, {_number(rule.maximum)}{right}"
    if rule.minimum is not None:
        return f"must be {'>' if rule.exclusive_minimum else '>='} {_number(rule.minimum)}"
    return f"must be {'<' if rule.exclusive_maximum else '<='} {_number(rule.maximum)}"


def location_expr(columns: Collection[str]) -> pl.Expr:
    """`` (<file> line <n>)``, or nothing when the frame has no lineage columns."""
    if "_source_file" not in columns or "_source_line" not in columns:
        return pl.lit("")
    return pl.concat_str(
        [
            pl.lit(" ("),
            _text(pl.col("_source_file")),
            pl.lit(" line "),
            _text(pl.col("_source_line")),
            pl.lit(")"),
        ]
    )


def json_object(columns: Sequence[str], names: Sequence[str] | None = None) -> pl.Expr:
    """``"name":"value"`` members of the non-null values, comma-separated, without braces.

    ``""`` when every value is null. Nulls are left out rather than written as ``null`` because a
    null here means the file did not have the column (a renamed or added column on some days).
    """
    names = names or columns
    members = [
        pl.when(pl.col(c).is_not_null()).then(
            pl.struct(pl.col(c).cast(pl.String).alias(n))
            .struct.json_encode()
            .str.strip_prefix("{")
            .str.strip_suffix("}")
        )
        for c, n in zip(columns, names, strict=True)
    ]
    if not members:
        return pl.lit("")
    return pl.concat_str(members, separator=",", ignore_nulls=True)


def delivered_columns(columns: Collection[str]) -> list[str]:
    """The typed frame's ``_delivered__<name>`` columns, in frame order."""
    return [c for c in columns if c.startswith(DELIVERED_PREFIX)]


def delivered_record(columns: Collection[str]) -> pl.Expr:
    """The row as delivered, as a JSON object, from its ``_delivered__<name>`` columns."""
    carried = delivered_columns(columns)
    names = [c.removeprefix(DELIVERED_PREFIX) for c in carried]
    return pl.concat_str([pl.lit("{"), json_object(carried, names), pl.lit("}")])


def _lit(part: pl.Expr | str) -> pl.Expr:
    return pl.lit(part) if isinstance(part, str) else part


# --------------------------------------------------------------------------------------------
# pandera

_PANDERA_KINDS = frozenset({"pattern", "valid_values", "range"})


def pandera_schema(contract: Contract, *, key_uniqueness: bool = True) -> pa.DataFrameSchema:
    """The published table's schema: dtypes, nullability, primary key and value checks.

    It states what the split guarantees, so any failure is a platform bug or a hand-edited table:
    only ``error`` rules become checks (warning rows are published on purpose), only rules that
    can be judged from the typed value alone (``type``, ``encoding`` and ``flag`` rules need raw
    text or flags the published table no longer has), and uniqueness only for the primary key
    (other ``unique`` rules are not enforced by the split; their own checks apply a threshold).
    """
    import pandera.polars as pa

    not_null = {r.column for r in contract.rules if r.kind == "required" and r.severity == "error"}
    key = contract.primary_key if key_uniqueness else ()
    single_key = key[0] if len(key) == 1 else None
    columns: dict[str, pa.Column] = {}
    for column in contract.columns:
        checks = [
            _pandera_check(rule)
            for rule in contract.rules
            if rule.column == column.name
            and rule.kind in _PANDERA_KINDS
            and rule.severity == "error"
        ]
        columns[column.name] = pa.Column(
            column.dtype,
            checks=checks,
            nullable=column.name not in not_null,
            unique=column.name == single_key,
            description=column.description,
        )
    for platform in contract.platform_columns():
        columns[platform.name] = pa.Column(
            platform.dtype,
            nullable=platform.nullable,
            required=False,
            description=platform.description,
        )
    return pa.DataFrameSchema(
        columns,
        strict=True,
        unique=list(key) if len(key) > 1 else None,
        name=contract.id,
        description=contract.description,
    )


def _pandera_check(rule: Rule) -> pa.Check:
    import pandera.polars as pa

    passes = ~failure_expr(rule, ())
    return pa.Check(
        lambda data, passes=passes: data.lazyframe.select(passes),
        name=rule.id,
        error=f"{rule.id}: {rule.constraint_text()}",
    )
