"""The registry of rule kinds: one module per kind under ``contracts/kinds/``, found by discovery.

A kind (like a pandera registered check) holds everything the platform does with one sort of
rule: how an ODCS item or property declaration compiles into a ``Rule``, the polars failure
expression and the DuckDB SQL failure predicate of a row rule, the reason a quarantined row
shows, the constraint in words, and how its asset check is evaluated. The loader, the
expressions, the checks and the quarantine ask the registry; none of them names a kind, so a
new kind is one module (with a module-level ``KIND``) plus its test.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import dagster as dg
    import polars as pl
    from open_data_contract_standard.model import CustomProperty, DataQuality, SchemaProperty

    from data_products.lib.contracts.model import (
        Column,
        Comparison,
        Contract,
        ContractError,
        Rule,
    )
    from data_products.lib.quarantine import SplitResult

KIND_PACKAGES: tuple[str, ...] = ("data_products.lib.contracts.kinds",)
"""Packages whose modules define rule kinds (a module-level ``KIND``); later ones may add kinds,
not replace them."""


class Compiler(Protocol):
    """What a kind's compile step may ask of the loader (errors name the file and the field)."""

    def fail(self, where: str, message: str) -> ContractError: ...
    def threshold(self, where: str, item: DataQuality) -> float: ...
    def comparison(self, where: str, item: DataQuality) -> Comparison: ...
    def pattern(self, where: str, pattern: Any) -> dict[str, Any]: ...
    def range(self, where: str, bounds: dict[str, Any], column: Column) -> dict[str, Any]: ...
    def custom_property(self, props: list[CustomProperty] | None, name: str, where: str) -> Any: ...


class CheckContext(Protocol):
    """What a kind's check evaluation may ask of ``contracts.checks``."""

    contract: Contract
    result: SplitResult
    keys: list[str]

    def row_rule(self, rule: Rule) -> dg.AssetCheckResult: ...
    def row_count(self, rule: Rule | None) -> dg.AssetCheckResult: ...
    def share_result(
        self,
        rule: Rule,
        failing: int,
        rows: int,
        samples: list[dict[str, Any]],
        *,
        quarantined: bool,
    ) -> dg.AssetCheckResult: ...
    def emit(
        self,
        name: str,
        *,
        passed: bool,
        severity: str,
        description: str,
        metadata: dict[str, Any],
    ) -> dg.AssetCheckResult: ...
    def execute_scalar(self, query: str) -> tuple[bool, Any]: ...
    def partition_filter(self) -> str: ...


@dataclass(frozen=True)
class Item:
    """One ODCS quality item being compiled, with what the loader already resolved."""

    where: str
    item: DataQuality
    column: Column | None
    declared: Mapping[str, dict[str, Any]]
    """Constraints the property declares (``required``, ``pattern``, ...) by kind name."""
    by_name: Mapping[str, Column]
    """The contract's columns (schema-level items only; empty on a property)."""
    common: dict[str, Any]
    """Rule fields every kind shares: id, column, severity, blocking, description, dimension."""

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.item.arguments or {})


class Kind:
    """Base of every rule kind; subclasses set ``name`` and override what applies to them."""

    name: ClassVar[str]
    row_rule: ClassVar[bool] = False
    """Evaluated per input row by the quarantine split (else a table-level check)."""
    metrics: ClassVar[frozenset[str]] = frozenset()
    """ODCS library metrics (``type: library``) that compile to this kind."""
    arguments: ClassVar[frozenset[str]] = frozenset()
    """For a metric several kinds share (``invalidValues``): the arguments that select this one."""
    item_types: ClassVar[frozenset[str]] = frozenset()
    """ODCS quality item types other than library and custom (``sql``) that compile to it."""
    custom_keys: ClassVar[frozenset[str] | None] = None
    """Keys of ``implementation: {kind: <name>, ...}`` for engine ``data-products`` custom items
    (besides ``kind``); ``None``: the kind cannot be chosen that way."""
    declaration_order: ClassVar[int | None] = None
    """Position among a property's declared constraints (those come before the property's
    quality items in contract order); ``None`` for kinds a property cannot declare."""
    uses_threshold: ClassVar[bool] = False
    """The check compares a failing share with ``threshold_pct``."""
    shows_delivered_text: ClassVar[bool] = False
    """A quarantined row shows the delivered text (``<column>__raw``), not the typed value."""
    pandera_check: ClassVar[bool] = False
    """An ``error`` rule becomes a pandera value check of the published frame."""
    enforces_not_null: ClassVar[bool] = False
    """An ``error`` rule makes its column non-nullable in the pandera schema."""
    own_check: ClassVar[bool] = True
    """The rule has an asset check of its own (the primary key reports through a platform one)."""
    replaces_platform_check: ClassVar[str | None] = None
    """A platform check this rule stands in for (a declared row count replaces the default)."""
    in_column_schema: ClassVar[bool] = True
    """Listed among its column's constraints (``required`` and ``type`` are the column's own)."""

    # -- compiling -----------------------------------------------------------------------------

    def declared(
        self,
        compiler: Compiler,
        where: str,
        prop: SchemaProperty,
        column: Column,
        options: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Rule fields from the property's standard ODCS fields, or ``None`` if it declares none.

        ``options`` are the property's ``logicalTypeOptions`` not yet claimed: pop the keys this
        kind enforces (the loader refuses what no kind claimed).
        """
        return None

    def declared_why(self, rule: Rule) -> str:
        """Description of a rule synthesised from a declaration with no quality item."""
        return f"{rule.column} is declared {self.constraint_text(rule)}."

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        raise NotImplementedError(f"{self.name} rules are not declared by quality items")

    # -- row rules -----------------------------------------------------------------------------

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        raise ValueError(f"rule {rule.id}: {rule.kind} is not evaluated per row")

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        raise ValueError(f"rule {rule.id}: {rule.kind} is not evaluated per row")

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        """The words after ``<rule id>: `` (``value`` is the shown value as text)."""
        raise ValueError(f"rule {rule.id}: {rule.kind} has no per-row reason")

    def inputs(self, rule: Rule) -> list[tuple[str, str]]:
        """(column, what the rule does with it) the typed frame must have."""
        return [] if rule.column is None else [(rule.column, f"checks column {rule.column!r}")]

    # -- reporting -----------------------------------------------------------------------------

    def constraint_text(self, rule: Rule) -> str:
        """The constraint in words, for column schemas, check descriptions and reasons."""
        return self.name

    def evaluate(self, ctx: CheckContext, rule: Rule) -> dg.AssetCheckResult:
        """The rule's asset check result for one run."""
        if self.row_rule:
            return ctx.row_rule(rule)
        raise NotImplementedError(f"{self.name} has no check evaluation")


def discover_kinds(package: str) -> dict[str, Kind]:
    """The ``KIND`` of every module of ``package`` (modules starting with ``_`` are helpers)."""
    root = importlib.import_module(package)
    found: dict[str, Kind] = {}
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, Kind):
            raise TypeError(f"{module.__name__}: a rule kind module defines KIND = <Kind>()")
        if kind.name in found:
            raise TypeError(f"{module.__name__}: rule kind {kind.name!r} is defined twice")
        found[kind.name] = kind
    return found


@cache
def _registry(packages: tuple[str, ...]) -> dict[str, Kind]:
    registry: dict[str, Kind] = {}
    for package in packages:
        for name, kind in discover_kinds(package).items():
            if name in registry:
                raise TypeError(f"{package}: rule kind {name!r} is already registered")
            registry[name] = kind
    return registry


def kinds() -> dict[str, Kind]:
    """Every registered kind, by name (modules of ``KIND_PACKAGES``, discovered once)."""
    return _registry(KIND_PACKAGES)


def clear_kinds() -> None:
    """Forget what discovery found, so the next ``kinds()`` imports ``KIND_PACKAGES`` again."""
    _registry.cache_clear()


def kind(name: str) -> Kind:
    registered = kinds()
    if name not in registered:
        raise KeyError(f"unknown rule kind {name!r}: known {sorted(registered)}")
    return registered[name]


def row_kinds() -> frozenset[str]:
    return frozenset(name for name, k in kinds().items() if k.row_rule)


def declaring_kinds() -> list[Kind]:
    """Kinds a property can declare, in the order their rules enter the contract."""
    declaring = [k for k in kinds().values() if k.declaration_order is not None]
    return sorted(declaring, key=lambda k: (k.declaration_order, k.name))
