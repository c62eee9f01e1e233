"""The typed-frame convention as small polars and SQL building blocks shared by the rule kinds.

Typed-frame convention (produced by each domain's transforms): ``<column>`` typed value;
``<column>__raw`` the delivered text (optional); ``_<flag>`` booleans the transform computed;
``_raw_record`` JSON of the delivered values; ``partition_date``, ``_source_file``,
``_source_line`` lineage. A rule looks at the raw text when the frame has it (the typed frame)
and at the typed value otherwise (the published frame, a stream's batch).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

import polars as pl

from data_products.lib.contracts.model import RAW_SUFFIX
from data_products.lib.keys import validate_column

if TYPE_CHECKING:
    from data_products.lib.contracts.model import Rule

REPLACEMENT_CHARACTER = "\ufffd"
"""What UTF-8-lossy decoding puts where the delivered bytes were not UTF-8."""

WHITESPACE = " \t\n\r\x0b\x0c"
"""What polars' ``str.strip_chars()`` strips; DuckDB's one-argument ``trim`` strips only spaces,
so the SQL predicates pass these characters explicitly and both engines agree on "empty"."""


def raw_column(column: str) -> str:
    return f"{column}{RAW_SUFFIX}"


def has_raw(rule: Rule, columns: Collection[str]) -> bool:
    return rule.column is not None and raw_column(rule.column) in columns


def text(expr: pl.Expr) -> pl.Expr:
    """A value as display text; ``null`` spelled out so reasons never collapse to null."""
    return expr.cast(pl.String).fill_null("null")


def raw_is_empty(rule: Rule, raw: str) -> pl.Expr:
    value = pl.col(raw).cast(pl.String)
    return value.is_null() | value.str.strip_chars().is_in(list(rule.missing_values))


def needs_column(rule: Rule) -> str:
    if rule.column is None:
        raise ValueError(f"rule {rule.id}: a {rule.kind} rule needs a column")
    return rule.column


# -- SQL ------------------------------------------------------------------------------------


def sql_identifier(name: str) -> str:
    """A column name validated against the platform's strict pattern, then double-quoted."""
    return '"' + validate_column(name) + '"'


def sql_string(value: str) -> str:
    """A SQL string literal (quotes doubled; DuckDB does not treat backslashes specially)."""
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot hold NUL")
    return "'" + value.replace("'", "''") + "'"


def sql_number(value: float) -> str:
    if isinstance(value, bool) or not math.isfinite(float(value)):
        raise ValueError(f"{value!r} is not a finite number")
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def sql_literal(value: object) -> str:
    """A string, number or boolean as a SQL literal; anything else is refused."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return sql_number(value)
    if isinstance(value, str):
        return sql_string(value)
    raise ValueError(f"{value!r}: only strings, numbers and booleans become SQL literals")


def sql_list(values: Iterable[object]) -> str:
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"


def sql_raw_is_empty(rule: Rule, raw: str) -> str:
    column = f"CAST({sql_identifier(raw)} AS VARCHAR)"
    return (
        f"({column} IS NULL OR trim({column}, {sql_string(WHITESPACE)}) IN "
        f"{sql_list(rule.missing_values)})"
    )
