"""``flag``: a boolean the transform computed (``_known_rate``, ``_in_partition``) is true.

A flag the transform could not establish (null) counts as failed: publish only what is proven.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import polars as pl

from data_products.lib.contracts.frames import sql_identifier
from data_products.lib.contracts.kinds._custom import compile_custom
from data_products.lib.contracts.model import Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind
from data_products.lib.keys import InvalidIdentifierError, validate_column

_FLAG = re.compile(r"^_[a-z][a-z0-9_]*$")


class Flag(Kind):
    name = "flag"
    row_rule = True
    custom_keys = frozenset({"flag", "column", "message"})
    uses_threshold = True
    shows_delivered_text = True

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        threshold = compile_custom(self, compiler, item, needs_column=False)
        impl = item.item.implementation
        assert isinstance(impl, dict)
        where, column = item.where, item.column
        flag = impl.get("flag")
        if not isinstance(flag, str) or not _FLAG.fullmatch(flag):
            raise compiler.fail(
                f"{where}.implementation.flag", f"{flag!r}: expected _lower_snake_case"
            )
        if column is not None and impl.get("column") not in (None, column.name):
            raise compiler.fail(
                f"{where}.implementation.column", "a property-level flag checks that property"
            )
        flag_column = column.name if column is not None else impl.get("column")
        if flag_column is not None:
            try:
                validate_column(flag_column, what="column")
            except InvalidIdentifierError as exc:
                raise compiler.fail(f"{where}.implementation.column", str(exc)) from None
        message = impl.get("message")
        if message is not None and not isinstance(message, str):
            raise compiler.fail(f"{where}.implementation.message", "expected text")
        return Rule(
            kind=self.name,
            threshold_pct=threshold,
            flag=flag,
            message=message,
            **{**item.common, "column": flag_column},
        )

    def inputs(self, rule: Rule) -> list[tuple[str, str]]:
        return [(str(rule.flag), f"needs flag column {rule.flag!r}"), *super().inputs(rule)]

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        return pl.col(str(rule.flag)).cast(pl.Boolean).not_().fill_null(True)

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        return f"coalesce(NOT CAST({sql_identifier(str(rule.flag))} AS BOOLEAN), TRUE)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        what = rule.message or f"{rule.flag} is false"
        return [f"{rule.column}=", value, f": {what}"] if rule.column else [what]

    def constraint_text(self, rule: Rule) -> str:
        return rule.message or f"{rule.flag} is true"


KIND = Flag()
