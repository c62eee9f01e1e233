"""``valid_values``: the value is one of an enumeration (ODCS ``enum`` or ``validValues``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl
from open_data_contract_standard.model import SchemaProperty

from data_products.lib.contracts.frames import needs_column, sql_identifier, sql_list
from data_products.lib.contracts.kinds._values import compile_value_rule
from data_products.lib.contracts.model import Column, Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


class ValidValues(Kind):
    name = "valid_values"
    row_rule = True
    metrics = frozenset({"invalidValues"})
    arguments = frozenset({"validValues"})
    declaration_order = 40
    uses_threshold = True
    pandera_check = True

    def declared(
        self,
        compiler: Compiler,
        where: str,
        prop: SchemaProperty,
        column: Column,
        options: dict[str, Any],
    ) -> dict[str, Any] | None:
        return {"values": tuple(e.value for e in prop.enum)} if prop.enum else None

    def declared_why(self, rule: Rule) -> str:
        return f"{rule.column} is declared as an enumeration of allowed values."

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        def from_arguments(
            compiler: Compiler, where: str, args: dict[str, Any], column: Column
        ) -> dict[str, Any]:
            values = args["validValues"]
            if not isinstance(values, list) or not values:
                raise compiler.fail(f"{where}.validValues", "expected a non-empty list")
            return {"values": tuple(values)}

        return compile_value_rule(self, compiler, item, from_arguments)

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        return pl.col(needs_column(rule)).is_in(list(rule.values)).not_().fill_null(False)

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        column = sql_identifier(needs_column(rule))
        return f"coalesce({column} NOT IN {sql_list(rule.values)}, FALSE)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        allowed = ", ".join(str(v) for v in rule.values)
        return [f"{rule.column}=", value, f" not in [{allowed}]"]

    def constraint_text(self, rule: Rule) -> str:
        return "in [" + ", ".join(str(v) for v in rule.values) + "]"


KIND = ValidValues()
