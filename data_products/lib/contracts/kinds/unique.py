"""``unique``: values (of one column, or of several together) appear once in the published rows.

Not enforced by the split (only the primary key is): the check reports the duplicated share
against the rule's threshold.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl
from open_data_contract_standard.model import SchemaProperty

from data_products.lib.contracts.model import Column, Rule
from data_products.lib.contracts.registry import CheckContext, Compiler, Item, Kind


class Unique(Kind):
    name = "unique"
    metrics = frozenset({"duplicateValues"})
    declaration_order = 50
    uses_threshold = True

    def declared(
        self,
        compiler: Compiler,
        where: str,
        prop: SchemaProperty,
        column: Column,
        options: dict[str, Any],
    ) -> dict[str, Any] | None:
        return {"columns": (column.name,)} if prop.unique else None

    def declared_why(self, rule: Rule) -> str:
        return f"{rule.column} is declared unique."

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        threshold = compiler.threshold(item.where, item.item)
        if item.column is not None:
            columns: tuple[str, ...] = (item.column.name,)
        else:
            columns = tuple(item.arguments.get("properties") or ())
            unknown = [c for c in columns if c not in item.by_name]
            if not columns or unknown:
                raise compiler.fail(
                    f"{item.where}.arguments.properties",
                    f"list the contract columns that must be unique together (unknown: {unknown})",
                )
        return Rule(kind=self.name, columns=columns, threshold_pct=threshold, **item.common)

    def constraint_text(self, rule: Rule) -> str:
        return "unique (" + ", ".join(rule.columns or (rule.column or "",)) + ")"

    def evaluate(self, ctx: CheckContext, rule: Rule) -> dg.AssetCheckResult:
        published = ctx.result.published
        duplicated = published.filter(pl.struct(list(rule.columns)).is_duplicated())
        samples = []
        for row in duplicated.head(5).iter_rows(named=True):
            key = ", ".join(f"{c}={row[c]}" for c in rule.columns)
            where = f"{row.get('_source_file')} line {row.get('_source_line')}"
            samples.append(
                {
                    "rule": rule.id,
                    "file": row.get("_source_file"),
                    "line": row.get("_source_line"),
                    "column": ", ".join(rule.columns),
                    "value": key,
                    "reason": f"{rule.id}: {key} appears more than once ({where})",
                    "raw_record": None,
                }
            )
        return ctx.share_result(
            rule, duplicated.height, published.height, samples, quarantined=False
        )


KIND = Unique()
