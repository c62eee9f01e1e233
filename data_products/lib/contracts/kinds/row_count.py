"""``row_count``: every partition of the run published a number of rows that satisfies the
item's ``mustBe*`` operator (ODCS ``rowCount`` at the schema level). It replaces the platform's
default ``row_count`` check (at least one row)."""

from __future__ import annotations

import dagster as dg

from data_products.lib.contracts.model import Rule
from data_products.lib.contracts.registry import CheckContext, Compiler, Item, Kind


class RowCount(Kind):
    name = "row_count"
    metrics = frozenset({"rowCount"})
    replaces_platform_check = "row_count"

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        if item.column is not None:
            raise compiler.fail(
                f"{item.where}.metric", "rowCount belongs to the schema, not a column"
            )
        comparison = compiler.comparison(item.where, item.item)
        return Rule(kind=self.name, comparison=comparison, **item.common)

    def constraint_text(self, rule: Rule) -> str:
        return f"value {rule.comparison}"

    def evaluate(self, ctx: CheckContext, rule: Rule) -> dg.AssetCheckResult:
        return ctx.row_count(rule)


KIND = RowCount()
