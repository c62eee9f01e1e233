"""``primary_key``: one published row per key. Compiled from the columns' ``primaryKey`` (not a
quality item); the split keeps the first delivered row by (file, line) and quarantines the
others, and the platform check ``primary_key_unique`` reports it (the rule has no check of its
own)."""

from __future__ import annotations

from data_products.lib.contracts.model import PRIMARY_KEY_KIND, Rule
from data_products.lib.contracts.registry import Kind
from data_products.lib.keys import DatasetName


class PrimaryKey(Kind):
    name = PRIMARY_KEY_KIND
    own_check = False

    def constraint_text(self, rule: Rule) -> str:
        return "unique (" + ", ".join(rule.columns or (rule.column or "",)) + ")"


def primary_key_rule(dataset: DatasetName, primary_key: tuple[str, ...]) -> Rule:
    return Rule(
        id=f"{dataset.name}.primary_key.duplicate",
        column=None,
        kind=PrimaryKey.name,
        severity="error",
        blocking=True,
        description=(
            f"One row per ({', '.join(primary_key)}): re-sent files and repeated rows must not be "
            "counted twice, so the first delivered row (by file, line) is published and the "
            "others are quarantined with a pointer to it."
        ),
        threshold_pct=100.0,
        columns=primary_key,
        declared_in_contract=False,
    )


KIND = PrimaryKey()
