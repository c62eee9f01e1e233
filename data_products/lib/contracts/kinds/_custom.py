"""Shared compile step of the platform's ``custom`` kinds (engine ``data-products``)."""

from __future__ import annotations

from data_products.lib.contracts.model import DEFAULT_THRESHOLD_PCT, Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


def compile_custom(kind: Kind, compiler: Compiler, item: Item, *, needs_column: bool) -> float:
    """Checks the implementation's keys (and the column when the kind needs one); returns the
    threshold from ``customProperties: thresholdPercent``."""
    impl = item.item.implementation
    assert isinstance(impl, dict)
    allowed = {"kind"} | (kind.custom_keys or frozenset())
    unknown = sorted(set(impl) - allowed)
    if unknown:
        raise compiler.fail(
            f"{item.where}.implementation", f"unsupported keys {unknown} for {kind.name}"
        )
    threshold = compiler.custom_property(item.item.customProperties, "thresholdPercent", item.where)
    threshold = DEFAULT_THRESHOLD_PCT if threshold is None else threshold
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0 <= threshold <= 100)
    ):
        raise compiler.fail(f"{item.where}.customProperties.thresholdPercent", "expected 0..100")
    if needs_column and item.column is None:
        raise compiler.fail(
            f"{item.where}.implementation",
            f"{kind.name} checks a column: declare it on the property",
        )
    return float(threshold)


def compile_column_custom(kind: Kind, compiler: Compiler, item: Item) -> Rule:
    """A custom kind on a property's delivered text (``type``, ``encoding``): the rule records
    the column's type, which its reason names."""
    threshold = compile_custom(kind, compiler, item, needs_column=True)
    assert item.column is not None
    return Rule(
        kind=kind.name,
        threshold_pct=threshold,
        expected_type=item.column.physical_type,
        **item.common,
    )
