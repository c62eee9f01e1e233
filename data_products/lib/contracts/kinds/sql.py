"""``sql``: an ODCS ``type: sql`` item: a query with ``{table}`` and ``{partition_filter}``
placeholders, run against the written table, whose single value the ``mustBe*`` operator judges."""

from __future__ import annotations

import re
from typing import Any

import dagster as dg

from data_products.lib.contracts.model import Rule
from data_products.lib.contracts.registry import CheckContext, Compiler, Item, Kind

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_PLACEHOLDERS = frozenset({"table", "partition_filter"})


class Sql(Kind):
    name = "sql"
    item_types = frozenset({"sql"})

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        query = (item.item.query or "").strip()
        unknown = sorted(set(_PLACEHOLDER.findall(query)) - _PLACEHOLDERS)
        if unknown:
            raise compiler.fail(
                f"{item.where}.query",
                f"unknown placeholders {unknown}; use {{table}}, {{partition_filter}}",
            )
        comparison = compiler.comparison(item.where, item.item)
        return Rule(kind=self.name, query=query, comparison=comparison, **item.common)

    def constraint_text(self, rule: Rule) -> str:
        return f"value {rule.comparison}"

    def evaluate(self, ctx: CheckContext, rule: Rule) -> dg.AssetCheckResult:
        query = (
            (rule.query or "")
            .replace("{table}", ctx.contract.physical_table)
            .replace("{partition_filter}", ctx.partition_filter())
        )
        metadata: dict[str, Any] = {
            "rule_id": dg.MetadataValue.text(rule.id),
            "query": dg.MetadataValue.md(f"```sql\n{query}\n```"),
            "expected": dg.MetadataValue.text(f"value {rule.comparison}"),
        }
        ran, value = ctx.execute_scalar(query)
        if not ran:
            description = f"{rule.id}: {value}"
            passed = False
        elif value is None or isinstance(value, bool) or not isinstance(value, int | float):
            passed, description = False, f"{rule.id}: query returned {value!r}, not a number"
        else:
            assert rule.comparison is not None
            passed = rule.comparison.holds(float(value))
            description = f"{rule.id}: value {value} (expected {rule.comparison})"
            metadata["value"] = dg.MetadataValue.float(float(value))
        return ctx.emit(
            rule.check_name,
            passed=passed,
            severity=rule.severity,
            description=description,
            metadata=metadata,
        )


KIND = Sql()
