"""The compiled view of a data contract: columns, rules and SLAs as plain frozen values.

The ODCS model (``open_data_contract_standard``) is a faithful mirror of the YAML, with every field
optional. The platform needs the opposite: a small set of facts that are guaranteed to be present
and consistent (a polars dtype for every column, a severity and a threshold for every rule), so the
loader resolves the YAML once into these values and everything downstream reads only them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
import polars as pl

from data_products.lib.keys import DatasetName, InvalidIdentifierError, validate_identifier

if TYPE_CHECKING:
    import pandera.polars as pa
    from open_data_contract_standard.model import OpenDataContractStandard

    from data_products.lib.contracts.registry import Kind

RuleKind = str
"""The name of a registered rule kind (``data_products.lib.contracts.registry``)."""
Severity = Literal["error", "warning"]

PRIMARY_KEY_KIND = "primary_key"

DEFAULT_THRESHOLD_PCT = 5.0
"""Share of failing rows a rule tolerates before its check fails. Real drops are messy: a few bad
rows are quarantined and the check still passes; a corrupted drop (a shifted column, a wrong
encoding for the whole file) fails it."""

RAW_SUFFIX = "__raw"
"""Typed-frame convention: ``<column>__raw`` holds the delivered text of typed ``<column>``."""

DELIVERED_PREFIX = "_delivered__"
"""Typed-frame convention: ``_delivered__<name>`` carries delivered column ``<name>`` unchanged, so
the quarantine can show a rejected row's record as delivered. Carrying a column costs nothing;
encoding every row's record as JSON up front cost 2 s of CPU per 2 M order lines, for the few
percent that are quarantined."""


class ContractError(ValueError):
    """A contract that cannot be loaded or compiled; the message names the file and the field."""


@dataclass(frozen=True)
class PlatformColumn:
    """A column the platform adds to every table it writes, unless the contract declares it."""

    name: str
    dtype: pl.DataType
    physical_type: str
    description: str
    nullable: bool


PLATFORM_COLUMNS: tuple[PlatformColumn, ...] = (
    PlatformColumn(
        "partition_date", pl.Date(), "DATE", "Partition (delivery day) of the row.", False
    ),
    PlatformColumn(
        "_source_file", pl.String(), "VARCHAR", "Landing file, relative to landing/.", False
    ),
    PlatformColumn(
        "_source_line", pl.Int64(), "BIGINT", "1-based line in the file (header = 1).", False
    ),
    PlatformColumn(
        "_extra_columns",
        pl.String(),
        "VARCHAR",
        "JSON of delivered columns the contract does not know (schema drift), else null.",
        True,
    ),
)
"""Lineage columns that silver tables carry: where each published row came from."""

_OPERATORS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "mustBe": ("==", operator.eq),
    "mustNotBe": ("!=", operator.ne),
    "mustBeGreaterThan": (">", operator.gt),
    "mustBeGreaterOrEqualTo": (">=", operator.ge),
    "mustBeLessThan": ("<", operator.lt),
    "mustBeLessOrEqualTo": ("<=", operator.le),
}


@dataclass(frozen=True)
class Comparison:
    """An ODCS ``mustBe*`` operator applied to a measured value (a SQL result, a row count)."""

    operator: str
    operand: float | tuple[float, float]

    def holds(self, value: float) -> bool:
        if self.operator in ("mustBeBetween", "mustNotBeBetween"):
            low, high = self.operand  # type: ignore[misc]
            inside = low <= value <= high
            return inside if self.operator == "mustBeBetween" else not inside
        _, compare = _OPERATORS[self.operator]
        return compare(value, self.operand)  # type: ignore[arg-type]

    def __str__(self) -> str:
        if self.operator == "mustBeBetween":
            return f"between {self.operand[0]} and {self.operand[1]}"  # type: ignore[index]
        if self.operator == "mustNotBeBetween":
            return f"not between {self.operand[0]} and {self.operand[1]}"  # type: ignore[index]
        return f"{_OPERATORS[self.operator][0]} {self.operand}"


@dataclass(frozen=True)
class Rule:
    """One quality rule of a contract, with everything needed to evaluate and report it.

    Row kinds (``kind_spec.row_rule``) are evaluated per input row; an ``error`` rule
    quarantines failing rows, a ``warning`` rule keeps them and reports them. Each rule's asset
    check passes while the share of failing rows stays at or under ``threshold_pct``.
    """

    id: str
    column: str | None
    kind: RuleKind
    severity: Severity
    blocking: bool
    description: str
    threshold_pct: float = DEFAULT_THRESHOLD_PCT
    dimension: str | None = None
    pattern: str | None = None
    values: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    flag: str | None = None
    message: str | None = None
    missing_values: tuple[str, ...] = ("",)
    columns: tuple[str, ...] = ()
    query: str | None = None
    comparison: Comparison | None = None
    expected_type: str | None = None
    declared_in_contract: bool = True
    """False for rules synthesised from a property declaration (``required: true``, ...)."""
    parameters: tuple[tuple[str, Any], ...] = ()
    """(name, value) pairs of a kind whose parameters have no field above (an
    ``implementation`` key such as a divisor), so adding a kind does not change this class."""

    @property
    def check_name(self) -> str:
        """Dagster check name: the rule id with ``.`` → ``__`` (stable, ``[A-Za-z0-9_]``)."""
        return self.id.replace(".", "__")

    def parameter(self, name: str) -> Any:
        """The value of one of the kind's ``parameters`` (``None`` when absent)."""
        return dict(self.parameters).get(name)

    @property
    def kind_spec(self) -> Kind:
        """The registered kind that compiles, evaluates and describes this rule."""
        from data_products.lib.contracts.registry import kind

        return kind(self.kind)

    @property
    def is_row_rule(self) -> bool:
        return self.kind_spec.row_rule

    def constraint_text(self) -> str:
        """The constraint in words, for column schemas, check descriptions and reasons."""
        return self.kind_spec.constraint_text(self)


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() and math.isfinite(value) else str(value)


def _qualified_table(table: str) -> str:
    parts = table.split(".")
    if len(parts) != 2:
        raise InvalidIdentifierError(f"{table!r}: expected <schema>.<table>")
    return ".".join(validate_identifier(part, what="table name part") for part in parts)


@dataclass(frozen=True)
class Column:
    """A contract column: its polars dtype and the facts catalogs and checks need."""

    name: str
    dtype: pl.DataType
    physical_type: str
    logical_type: str
    required: bool
    unique: bool
    pii: bool
    aliases: tuple[str, ...]
    description: str
    classification: str | None = None
    primary_key: bool = False
    primary_key_position: int | None = None


@dataclass(frozen=True)
class Freshness:
    """A freshness SLA: the asset must be materialised within ``fail_after`` (warn earlier)."""

    fail_after: timedelta
    warn_after: timedelta | None
    description: str | None = None


@dataclass(frozen=True, eq=False)
class Contract:
    """A loaded, validated contract, compiled for the platform.

    Build it with ``load_contract``; the original ODCS model stays available as ``odcs``.
    """

    dataset: DatasetName
    path: Path
    owner: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    rules: tuple[Rule, ...]
    physical_table: str
    odcs: OpenDataContractStandard
    freshness: Freshness | None = None
    publishes_to_iceberg: bool = False
    _tags: tuple[tuple[str, str], ...] = field(default=())

    @property
    def key(self) -> dg.AssetKey:
        return self.dataset.asset_key

    @property
    def id(self) -> str:
        return f"{self.dataset.domain}.{self.dataset.layer}.{self.dataset.name}"

    @property
    def tags(self) -> dict[str, str]:
        """Dagster tags: ``layer``, ``pii`` and the contract's ``key:value`` tags (a fresh dict)."""
        return dict(self._tags)

    @property
    def quarantine_dataset(self) -> DatasetName:
        """Where this dataset's rejected rows go: ``<domain>/<layer>/<name>_quarantine``."""
        return DatasetName(
            self.dataset.domain, self.dataset.layer, f"{self.dataset.name}_quarantine"
        )

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.path}: contract {self.id} has no column {name!r}")

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"{self.path}: contract {self.id} has no rule {rule_id!r}")

    @property
    def primary_key_rule(self) -> Rule | None:
        return next((r for r in self.rules if r.kind == PRIMARY_KEY_KIND), None)

    def row_rules(self) -> list[Rule]:
        """Rules evaluated per row by the quarantine split, in contract order."""
        return [r for r in self.rules if r.is_row_rule]

    def table_rules(self) -> list[Rule]:
        """Rules evaluated on the whole published table (unique, row count, SQL, primary key)."""
        return [r for r in self.rules if not r.is_row_rule]

    def platform_columns(self) -> tuple[PlatformColumn, ...]:
        """Platform lineage columns of this dataset's tables that the contract does not declare."""
        declared = {c.name for c in self.columns}
        return tuple(p for p in PLATFORM_COLUMNS if p.name not in declared)

    def table_platform_columns(
        self, frame_columns: Collection[str] | None = None
    ) -> tuple[PlatformColumn, ...]:
        """The platform columns this dataset's table carries: those of ``frame_columns`` when a
        frame is given; without one, the lineage columns every silver table carries
        (``_extra_columns`` only appears with drift; other layers carry none)."""
        if frame_columns is not None:
            return tuple(p for p in self.platform_columns() if p.name in frame_columns)
        if self.dataset.layer != "silver":
            return ()
        return tuple(p for p in self.platform_columns() if p.name != "_extra_columns")

    def ddl(self, table: str | None = None, *, platform_columns: bool = True) -> str:
        """``CREATE TABLE IF NOT EXISTS <schema.table> (...)`` for the published table.

        Columns in contract order with their ``physicalType`` (``required`` → ``NOT NULL``),
        then the platform columns the table carries (``table_platform_columns``) unless
        ``platform_columns=False`` (a stream whose contract declares its own lineage columns).
        ``table`` (``schema.name``, default the contract's physical table) is validated; column
        names were validated by the loader and types come from its closed list.
        """
        qualified = _qualified_table(table or self.physical_table)
        lines = [
            f'"{c.name}" {c.physical_type}' + (" NOT NULL" if c.required else "")
            for c in self.columns
        ]
        if platform_columns:
            lines += [
                f'"{p.name}" {p.physical_type}' + ("" if p.nullable else " NOT NULL")
                for p in self.table_platform_columns()
            ]
        return f"CREATE TABLE IF NOT EXISTS {qualified} (\n    " + ",\n    ".join(lines) + "\n)"

    def pandera_schema(self, *, key_uniqueness: bool = True) -> pa.DataFrameSchema:
        """Types, nullability, uniqueness and the value checks of every ``error`` rule.

        ``key_uniqueness=False`` leaves the primary key out, for callers that check it themselves.
        """
        from data_products.lib.contracts.expressions import pandera_schema

        return pandera_schema(self, key_uniqueness=key_uniqueness)

    def check_specs(
        self,
        asset_key: dg.AssetKey | None = None,
        *,
        partitions_def: dg.PartitionsDefinition | None = None,
    ) -> list[dg.AssetCheckSpec]:
        """One check per rule plus the platform checks (see ``contracts.checks``)."""
        from data_products.lib.contracts.checks import check_specs

        return check_specs(self, asset_key or self.key, partitions_def=partitions_def)

    def freshness_policy(self) -> dg.FreshnessPolicy | None:
        """The freshness SLA as a Dagster time-window policy, or ``None`` without an SLA."""
        if self.freshness is None:
            return None
        return dg.FreshnessPolicy.time_window(
            fail_window=self.freshness.fail_after, warn_window=self.freshness.warn_after
        )

    def column_schema(self, frame: pl.DataFrame | None = None) -> dg.TableSchema:
        """``dagster/column_schema`` of the published table, with descriptions and constraints.

        Platform lineage columns are included when ``frame`` has them; without a frame, the ones
        every table of this layer carries (``_extra_columns`` only appears with drift).
        """
        by_column: dict[str, list[str]] = {}
        for rule in self.rules:
            if rule.column is not None and rule.kind_spec.in_column_schema:
                by_column.setdefault(rule.column, []).append(f"{rule.id}: {rule.constraint_text()}")
        columns = [
            dg.TableColumn(
                name=c.name,
                type=c.physical_type,
                description=c.description,
                constraints=dg.TableColumnConstraints(
                    nullable=not c.required, unique=c.unique, other=by_column.get(c.name)
                ),
                tags={"pii": "true"} if c.pii else None,
            )
            for c in self.columns
        ]
        for platform in self.table_platform_columns(None if frame is None else frame.columns):
            columns.append(
                dg.TableColumn(
                    name=platform.name,
                    type=platform.physical_type,
                    description=platform.description,
                    constraints=dg.TableColumnConstraints(nullable=platform.nullable),
                )
            )
        constraints = (
            dg.TableConstraints(other=[f"primary key ({', '.join(self.primary_key)})"])
            if self.primary_key
            else None
        )
        return dg.TableSchema(columns=columns, constraints=constraints)
