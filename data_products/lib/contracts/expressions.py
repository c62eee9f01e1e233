"""Each row rule as polars expressions (and a DuckDB SQL predicate): whether a row fails, what
value to show, and why.

What a rule means lives in its kind (``contracts/kinds/<kind>.py``); these functions are the
public entry points. One expression per rule serves both the quarantine split (on the typed
frame, which still has the raw text) and the pandera schema (on the published frame, typed values
only), so the two can never disagree about what a rule means. Everything here is vectorised: no
Python runs per row.

Typed-frame convention (produced by each domain's transforms):
``<column>`` typed value; ``<column>__raw`` the delivered text (optional); ``_<flag>`` booleans the
transform computed (``_known_rate``, ``_lines_complete``, ``_in_partition``); ``_raw_record`` JSON
of the delivered values; ``partition_date``, ``_source_file``, ``_source_line`` lineage.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import polars as pl

from data_products.lib.contracts.frames import REPLACEMENT_CHARACTER, raw_column, text
from data_products.lib.contracts.model import DELIVERED_PREFIX, Rule

if TYPE_CHECKING:
    import pandera.polars as pa

    from data_products.lib.contracts.model import Contract


def failure_expr(rule: Rule, columns: Collection[str]) -> pl.Expr:
    """True where the row breaks ``rule``, False otherwise (never null).

    ``columns`` are the frame's columns: rules look at the raw text when the frame has it (the
    typed frame) and at the typed value otherwise (the published frame).
    """
    return rule.kind_spec.failure_expr(rule, columns)


def failure_sql(rule: Rule, columns: Collection[str]) -> str:
    """The same test as ``failure_expr`` as a DuckDB SQL boolean predicate (true when the row
    fails, never null) over a relation with ``columns``.

    Built only from column names validated against the platform's identifier pattern (then
    double-quoted) and literals quoted by ``contracts.frames``: no contract text reaches the SQL
    unquoted.
    """
    return rule.kind_spec.failure_sql(rule, columns)


def value_expr(rule: Rule, columns: Collection[str]) -> pl.Expr:
    """The value a reader needs to see: the delivered text for parsing rules, else the typed one."""
    if rule.column is None or rule.column not in columns:
        return pl.lit(None, dtype=pl.String)
    raw = raw_column(rule.column)
    if rule.kind_spec.shows_delivered_text and raw in columns:
        return pl.col(raw).cast(pl.String)
    return pl.col(rule.column).cast(pl.String)


def reason_expr(rule: Rule, columns: Collection[str]) -> pl.Expr:
    """``<rule id>: <column>=<value> <what is wrong> (<file> line <n>)`` for every row."""
    said = rule.kind_spec.reason(rule, text(value_expr(rule, columns)))
    return pl.concat_str([pl.lit(f"{rule.id}: "), *(_lit(p) for p in said), location_expr(columns)])


def location_expr(columns: Collection[str]) -> pl.Expr:
    """`` (<file> line <n>)``, or nothing when the frame has no lineage columns."""
    if "_source_file" not in columns or "_source_line" not in columns:
        return pl.lit("")
    return pl.concat_str(
        [
            pl.lit(" ("),
            text(pl.col("_source_file")),
            pl.lit(" line "),
            text(pl.col("_source_line")),
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


def pandera_schema(contract: Contract, *, key_uniqueness: bool = True) -> pa.DataFrameSchema:
    """The published table's schema: dtypes, nullability, primary key and value checks.

    It states what the split guarantees, so any failure is a platform bug or a hand-edited table:
    only ``error`` rules become checks (warning rows are published on purpose), only rules that
    can be judged from the typed value alone (``type``, ``encoding`` and ``flag`` rules need raw
    text or flags the published table no longer has), and uniqueness only for the primary key
    (other ``unique`` rules are not enforced by the split; their own checks apply a threshold).
    """
    import pandera.polars as pa

    not_null = {
        r.column for r in contract.rules if r.kind_spec.enforces_not_null and r.severity == "error"
    }
    key = contract.primary_key if key_uniqueness else ()
    single_key = key[0] if len(key) == 1 else None
    columns: dict[str, pa.Column] = {}
    for column in contract.columns:
        checks = [
            _pandera_check(rule)
            for rule in contract.rules
            if rule.column == column.name
            and rule.kind_spec.pandera_check
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


__all__ = [
    "REPLACEMENT_CHARACTER",
    "delivered_columns",
    "delivered_record",
    "failure_expr",
    "failure_sql",
    "json_object",
    "location_expr",
    "pandera_schema",
    "raw_column",
    "reason_expr",
    "value_expr",
]
