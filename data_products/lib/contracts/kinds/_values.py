"""Shared compile step of the value kinds (pattern, valid_values, range): an ``invalidValues``
item takes its constraint from its own arguments or, without arguments, from the property."""

from __future__ import annotations

from typing import Any

from data_products.lib.contracts.model import Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


def compile_value_rule(
    kind: Kind, compiler: Compiler, item: Item, params_from_arguments: Any
) -> Rule:
    threshold = compiler.threshold(item.where, item.item)
    if item.column is None:
        metric = item.item.metric or item.item.rule
        raise compiler.fail(
            f"{item.where}.metric", f"{metric} checks a column: declare it on the property"
        )
    args = {k: v for k, v in item.arguments.items() if k in kind.arguments}
    if args:
        params = params_from_arguments(compiler, f"{item.where}.arguments", args, item.column)
        declared = item.declared.get(kind.name)
        if declared is not None and declared != params:
            raise compiler.fail(
                f"{item.where}.arguments",
                f"contradicts the property's declared {kind.name} {declared}",
            )
    else:
        params = item.declared[kind.name]
    return Rule(kind=kind.name, threshold_pct=threshold, **params, **item.common)
