"""Reading contracts: YAML → validated ODCS v3 model → compiled ``Contract``.

Validation happens in three layers, each with errors that name the file and the field:
1. YAML syntax (line and column);
2. the ODCS JSON Schema shipped with ``open_data_contract_standard``. The pydantic models ignore
   unknown keys below the top level, so a typo such as ``mustbe: 0`` would otherwise vanish
   silently and the rule would run with a default threshold;
3. the platform's own rules (identifiers, types, rule ids, thresholds), applied while compiling.

How a contract says things (the conventions other domains follow):
- ``id: <domain>.<layer>.<name>``; one schema object named ``<name>`` with ``physicalName``
  ``<domain>_<layer>.<name>``; file ``contracts/<domain>/<name>.yaml``.
- Owner: the domain descriptor's (``data_products/domains/<domain>.yaml``); a contract declares
  no ``team`` (one naming a different team is refused). PII: ``classification: pii``.
- Column constraints are declared where ODCS puts them: ``required``, ``unique``, ``primaryKey`` /
  ``primaryKeyPosition``, ``logicalTypeOptions`` (``pattern``, ``minimum``, ``maximum``,
  ``exclusiveMinimum``, ``exclusiveMaximum``) and ``enum``. Each becomes a rule with id
  ``<dataset>.<column>.<kind>``.
- A ``quality`` item whose ``name`` is a rule id describes that rule: why it exists
  (``description``), ``severity`` (error quarantines, warning only reports), the tolerated share of
  failing rows (``unit: percent`` + ``mustBeLessOrEqualTo``, or ``mustBe: 0``) and whether its
  check is blocking (``customProperties: [{property: blocking, value: true}]``). Library metrics:
  ``nullValues``/``missingValues`` → required; ``invalidValues`` → pattern / valid_values / range
  (from ``arguments`` or, without arguments, from the property's declaration);
  ``duplicateValues`` → unique; ``rowCount`` (schema level) → row count per partition.
- Defaults: severity error, threshold 5 %, not blocking. Every column and every quality item
  needs a ``description`` (what it holds; why the rule exists).
- Contract order (which rule a quarantined row is filed under: its first failing error rule) is
  property by property, each property's rules in YAML order after the rules synthesised from its
  declarations, then the schema-level items, then the primary key.
- Platform-specific row rules are ODCS ``custom`` items for engine ``data-products``:
  ``implementation: {kind: type}`` (raw text did not parse), ``{kind: encoding}`` (U+FFFD in the
  raw text) and ``{kind: flag, flag: _known_rate, column: currency, message: ...}`` (a boolean the
  transform computed is false). Their threshold is ``customProperties: thresholdPercent``.
- ``type: sql`` items run a query with ``{table}`` and ``{partition_filter}`` placeholders against
  the written table and compare its single value with the ``mustBe*`` operator.
- Freshness: an ``slaProperties`` entry ``property: latency`` (or ``freshness``) with ``value`` and
  ``unit``; ``customProperties: [{property: warnAfter, value: ...}]`` (same unit) adds a warning.
- Publishing to the lake: a ``servers`` entry of ``type: iceberg``.
- What each rule kind accepts and means is in its module, ``contracts/kinds/<kind>.py``; this
  module only selects the kind an item names (``registry``) and checks what every rule shares.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import jsonschema.exceptions
import polars as pl
import pydantic
import yaml
from open_data_contract_standard.model import (
    CustomProperty,
    DataQuality,
    OpenDataContractStandard,
    SchemaObject,
    SchemaProperty,
    Team,
)

from data_products.lib.contracts.kinds.primary_key import primary_key_rule
from data_products.lib.contracts.model import (
    DEFAULT_THRESHOLD_PCT,
    Column,
    Comparison,
    Contract,
    ContractError,
    Freshness,
    Rule,
    RuleKind,
    Severity,
)
from data_products.lib.contracts.registry import Item, Kind, declaring_kinds, kind, kinds
from data_products.lib.domains import domain as domain_descriptor
from data_products.lib.keys import (
    DatasetName,
    InvalidIdentifierError,
    validate_column,
    validate_identifier,
)
from data_products.lib.settings import REPO_ROOT

CONTRACTS_DIR = REPO_ROOT / "contracts"
ENGINE = "data-products"
"""``engine`` of the ODCS ``custom`` quality items run here; other engines belong to other tools."""

PLATFORM_CHECK_NAMES = frozenset(
    {"rows_reconcile", "primary_key_unique", "schema", "row_count", "unexpected_columns"}
)

_RULE_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_DESCRIPTIVE_OPTIONS = frozenset({"format", "timezone", "defaultTimezone"})
_OPERATORS = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)

_PHYSICAL_TYPES: dict[str, tuple[pl.DataType, str]] = {
    "VARCHAR": (pl.String(), "string"),
    "TEXT": (pl.String(), "string"),
    "STRING": (pl.String(), "string"),
    "DOUBLE": (pl.Float64(), "number"),
    "FLOAT8": (pl.Float64(), "number"),
    "FLOAT": (pl.Float32(), "number"),
    "REAL": (pl.Float32(), "number"),
    "TINYINT": (pl.Int8(), "integer"),
    "SMALLINT": (pl.Int16(), "integer"),
    "INTEGER": (pl.Int32(), "integer"),
    "INT": (pl.Int32(), "integer"),
    "INT4": (pl.Int32(), "integer"),
    "BIGINT": (pl.Int64(), "integer"),
    "INT8": (pl.Int64(), "integer"),
    "BOOLEAN": (pl.Boolean(), "boolean"),
    "BOOL": (pl.Boolean(), "boolean"),
    "DATE": (pl.Date(), "date"),
    "TIMESTAMP": (pl.Datetime("us"), "timestamp"),
    "DATETIME": (pl.Datetime("us"), "timestamp"),
    "TIMESTAMPTZ": (pl.Datetime("us", "UTC"), "timestamp"),
    "TIMESTAMP WITH TIME ZONE": (pl.Datetime("us", "UTC"), "timestamp"),
}
_LOGICAL_DEFAULTS: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}
_DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC)\((\d+),\s*(\d+)\)$")
_SECONDS_PER_UNIT: dict[str, int] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86_400),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * 86_400),
}


# --------------------------------------------------------------------------------------------
# Public entry points


def load_contract(path: Path | str) -> Contract:
    """Load, validate and compile one contract file (compiled once per file content)."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{_display(path)}: contract file not found") from None
    except UnicodeDecodeError as exc:
        raise ContractError(f"{_display(path)}: not UTF-8: {exc}") from None
    return _compile_text(path, text)


def discover_contracts(root: Path = CONTRACTS_DIR) -> dict[dg.AssetKey, Contract]:
    """Every ``<root>/<domain>/<dataset>.yaml``, keyed by asset key.

    The file's place is checked against its id, so a contract cannot silently govern another
    domain's dataset because it was copied into the wrong folder.
    """
    found: dict[dg.AssetKey, Contract] = {}
    paths = sorted([*root.glob("*/*.yaml"), *root.glob("*/*.yml")])
    for path in paths:
        contract = load_contract(path)
        if contract.dataset.domain != path.parent.name:
            raise ContractError(
                f"{_display(path)}: id: {contract.id} belongs to domain "
                f"{contract.dataset.domain!r} but the file is in contracts/{path.parent.name}/"
            )
        if contract.dataset.name != path.stem:
            raise ContractError(
                f"{_display(path)}: id: {contract.id} must live in a file named "
                f"{contract.dataset.name}.yaml"
            )
        if contract.key in found:
            raise ContractError(
                f"{_display(path)}: id: {contract.id} is also declared by "
                f"{_display(found[contract.key].path)}"
            )
        found[contract.key] = contract
    return found


def load_contract_for(key: str | dg.AssetKey | DatasetName, root: Path = CONTRACTS_DIR) -> Contract:
    """The contract governing a dataset, by contract id (``commerce.silver.orders``), asset key
    string (``commerce/silver/orders``), ``AssetKey`` or ``DatasetName``."""
    dataset = _dataset_for(key)
    candidate = root / dataset.domain / f"{dataset.name}.yaml"
    if candidate.exists():
        contract = load_contract(candidate)
        if contract.dataset == dataset:
            return contract
    contracts = discover_contracts(root)
    if dataset.asset_key in contracts:
        return contracts[dataset.asset_key]
    known = ", ".join(str(DatasetName.from_key(k)) for k in contracts) or "none"
    raise ContractError(
        f"no contract for {dataset} under {_display(root)} (expected {_display(candidate)}); "
        f"contracts found: {known}"
    )


def _dataset_for(key: str | dg.AssetKey | DatasetName) -> DatasetName:
    if isinstance(key, DatasetName):
        return key
    if isinstance(key, dg.AssetKey):
        return DatasetName.from_key(key)
    parts = key.split("/") if "/" in key else key.split(".")
    if len(parts) != 3:
        raise InvalidIdentifierError(
            f"{key!r} is not a contract id <domain>.<layer>.<name> or key <domain>/<layer>/<name>"
        )
    return DatasetName(*parts)


# --------------------------------------------------------------------------------------------
# Layers 1 and 2: YAML and the ODCS standard


@lru_cache(maxsize=256)
def _compile_text(path: Path, text: str) -> Contract:
    # Keyed by content, not mtime: a test or an editor can rewrite a file within one mtime tick.
    document = _read_yaml(path, text)
    _validate_against_standard(path, document)
    try:
        odcs = OpenDataContractStandard.model_validate(document)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{_field(document, err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ContractError(f"{_display(path)}: {problems}") from None
    return _Compiler(path, odcs, document).compile()


def _read_yaml(path: Path, text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractError(f"{_display(path)}: invalid YAML: {where}{problem}") from None
    if not isinstance(document, dict):
        raise ContractError(f"{_display(path)}: expected a mapping at the top level")
    return document


@cache
def _standard_validator() -> jsonschema.protocols.Validator:
    text = (
        importlib.resources.files("open_data_contract_standard")
        .joinpath("schema.json")
        .read_text(encoding="utf-8")
    )
    schema = json.loads(text)
    return jsonschema.validators.validator_for(schema)(schema)


def _validate_against_standard(path: Path, document: dict[str, Any]) -> None:
    errors = sorted(_standard_validator().iter_errors(document), key=lambda e: list(e.path))
    if not errors:
        return
    problems = []
    for error in errors[:5]:
        best = jsonschema.exceptions.best_match([error])
        problems.append(f"{_field(document, best.absolute_path)}: {best.message}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise ContractError(
        f"{_display(path)}: not a valid ODCS v3 contract: " + "; ".join(problems) + more
    )


def _field(document: Any, location: Iterable[Any]) -> str:
    """``schema[0] (orders).properties[2] (quantity).quality[1]`` from a JSON path."""
    parts: list[str] = []
    node = document
    for step in location:
        if step == "schema_":
            step = "schema"
        if isinstance(step, int):
            label = f"[{step}]"
            try:
                node = node[step]
            except (IndexError, KeyError, TypeError):
                node = None
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(label + (f" ({name})" if isinstance(name, str) else ""))
        else:
            parts.append(("." if parts else "") + str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# Layer 3: compiling


class _Compiler:
    """Turns one validated ODCS document into a ``Contract``; every error names the field."""

    def __init__(self, path: Path, odcs: OpenDataContractStandard, document: dict[str, Any]):
        self.path = path
        self.odcs = odcs
        self.document = document

    def fail(self, where: str, message: str) -> ContractError:
        return ContractError(f"{_display(self.path)}: {where}: {message}")

    def compile(self) -> Contract:
        dataset = self._dataset()
        obj = self._schema_object(dataset)
        props = obj.properties or []
        if not props:
            raise self.fail("schema[0].properties", "a contract needs at least one column")
        columns = [self._column(i, prop) for i, prop in enumerate(props)]
        seen: set[str] = set()
        for i, column in enumerate(columns):
            if column.name in seen:
                raise self.fail(f"schema[0].properties[{i}]", f"duplicate column {column.name!r}")
            seen.add(column.name)
        by_name = {c.name: c for c in columns}
        primary_key = self._primary_key(columns)

        rules: list[Rule] = []
        for i, (prop, column) in enumerate(zip(props, columns, strict=True)):
            rules.extend(self._property_rules(dataset, i, prop, column))
        for j, item in enumerate(obj.quality or []):
            where = f"schema[0].quality[{j}]" + (f" ({item.name})" if item.name else "")
            rule = self._item_rule(dataset, where, item, column=None, declared={}, by_name=by_name)
            if rule is not None:
                rules.append(rule)
        if primary_key:
            rules.append(primary_key_rule(dataset, primary_key))
        self._check_unique_ids(rules)

        return Contract(
            dataset=dataset,
            path=self.path,
            owner=self._owner(),
            description=self._description(obj),
            columns=tuple(columns),
            primary_key=primary_key,
            rules=tuple(rules),
            physical_table=self._physical_table(dataset, obj),
            odcs=self.odcs,
            freshness=self._freshness(),
            publishes_to_iceberg=any(s.type == "iceberg" for s in self.odcs.servers or []),
            _tags=tuple(self._tags(dataset, columns).items()),
        )

    # -- identity, ownership, description -----------------------------------------------------

    def _dataset(self) -> DatasetName:
        contract_id = self.odcs.id or ""
        parts = contract_id.split(".")
        if len(parts) != 3:
            raise self.fail("id", f"{contract_id!r} is not <domain>.<layer>.<name>")
        try:
            dataset = DatasetName(*parts)
        except InvalidIdentifierError as exc:
            raise self.fail("id", str(exc)) from None
        if self.odcs.domain is not None and self.odcs.domain != dataset.domain:
            raise self.fail(
                "domain", f"{self.odcs.domain!r} differs from the id's {dataset.domain!r}"
            )
        return dataset

    def _schema_object(self, dataset: DatasetName) -> SchemaObject:
        objects = self.odcs.schema_ or []
        if len(objects) != 1:
            raise self.fail("schema", f"expected exactly one schema object, found {len(objects)}")
        obj = objects[0]
        if obj.name != dataset.name:
            raise self.fail(
                "schema[0].name", f"{obj.name!r} must be the dataset name {dataset.name!r}"
            )
        return obj

    def _physical_table(self, dataset: DatasetName, obj: SchemaObject) -> str:
        physical = obj.physicalName or dataset.table
        if physical != dataset.table:
            raise self.fail(
                "schema[0].physicalName",
                f"{physical!r} must be {dataset.table!r} (the DuckDB table the platform writes)",
            )
        return physical

    def _owner(self) -> str:
        """The domain descriptor's owner, declared once there (ODCS does not require ``team``).
        A contract that still names a team must name that owner: two owners cannot both be
        right, so a different one is refused rather than silently ignored."""
        dataset = self._dataset()
        try:
            owner = domain_descriptor(dataset.domain).owner
        except KeyError as exc:
            raise self.fail("id", str(exc.args[0])) from None
        team = self.odcs.team
        if isinstance(team, Team) and team.name:
            name = team.name
            declared = name if name.startswith("team:") or "@" in name else f"team:{name}"
            if declared != owner:
                raise self.fail(
                    "team.name",
                    f"{name!r} is not {owner!r}, the owner in data_products/domains/"
                    f"{dataset.domain}.yaml: remove team (owners are declared once, there)",
                )
        return owner

    def _description(self, obj: SchemaObject) -> str:
        text = obj.description or (self.odcs.description.purpose if self.odcs.description else None)
        if not text or not text.strip():
            raise self.fail("schema[0].description", "describe the dataset and its grain")
        return " ".join(text.split())

    def _tags(self, dataset: DatasetName, columns: Sequence[Column]) -> dict[str, str]:
        tags = {"layer": dataset.layer, "pii": "true" if any(c.pii for c in columns) else "false"}
        for i, tag in enumerate(self.odcs.tags or []):
            if ":" not in tag:
                continue  # a catalog label, not a Dagster tag
            key, value = (part.strip() for part in tag.split(":", 1))
            if not _TAG.fullmatch(key) or not (value == "" or _TAG.fullmatch(value)):
                raise self.fail(
                    f"tags[{i}]", f"{tag!r}: Dagster tags are [A-Za-z0-9_.-], ≤ 63 chars"
                )
            if key in ("layer", "pii"):
                raise self.fail(f"tags[{i}]", f"{key!r} is derived from the contract; remove it")
            tags[key] = value
        return tags

    def _freshness(self) -> Freshness | None:
        found: Freshness | None = None
        for i, sla in enumerate(self.odcs.slaProperties or []):
            if (sla.property or "").lower() not in ("latency", "freshness"):
                continue
            where = f"slaProperties[{i}] ({sla.property})"
            if found is not None:
                raise self.fail(where, "only one latency/freshness SLA per contract")
            unit = (sla.unit or "").lower()
            if unit not in _SECONDS_PER_UNIT:
                raise self.fail(f"{where}.unit", f"{sla.unit!r}: use one of d, h, min, s, w, y")
            fail_after = _duration(sla.value, unit)
            if fail_after is None:
                raise self.fail(f"{where}.value", f"{sla.value!r} is not a positive number")
            warn_value = self.custom_property(sla.customProperties, "warnAfter", where)
            warn_after = _duration(warn_value, unit) if warn_value is not None else None
            if warn_value is not None and (warn_after is None or warn_after >= fail_after):
                raise self.fail(
                    f"{where}.customProperties.warnAfter",
                    f"{warn_value!r} must be a positive number below value ({sla.value})",
                )
            if fail_after < timedelta(seconds=60):
                raise self.fail(where, "Dagster freshness windows are at least 60 seconds")
            found = Freshness(
                fail_after=fail_after, warn_after=warn_after, description=sla.description
            )
        return found

    # -- columns ------

    def _column(self, index: int, prop: SchemaProperty) -> Column:
        where = f"schema[0].properties[{index}]" + (f" ({prop.name})" if prop.name else "")
        try:
            # validate_column: load-time columns (``_trained_at``) start with "_" like the
            # platform's own, so a re-run can leave them out of what it compares.
            name = validate_column(prop.name or "", what="column name")
        except InvalidIdentifierError as exc:
            raise self.fail(f"{where}.name", str(exc)) from None
        if not prop.description or not prop.description.strip():
            raise self.fail(f"{where}.description", "every column says what it holds")
        dtype, physical, logical = self._dtype(where, prop)
        aliases = self.custom_property(prop.customProperties, "aliases", where) or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise self.fail(f"{where}.customProperties.aliases", "expected a list of column names")
        for alias in aliases:
            try:
                validate_identifier(alias, what="alias")
            except InvalidIdentifierError as exc:
                raise self.fail(f"{where}.customProperties.aliases", str(exc)) from None
        return Column(
            name=name,
            dtype=dtype,
            physical_type=physical,
            logical_type=logical,
            required=bool(prop.required),
            unique=bool(prop.unique),
            pii=(prop.classification or "").lower() == "pii",
            aliases=tuple(aliases),
            description=" ".join(prop.description.split()),
            classification=prop.classification,
            primary_key=bool(prop.primaryKey),
            primary_key_position=prop.primaryKeyPosition if prop.primaryKey else None,
        )

    def _dtype(self, where: str, prop: SchemaProperty) -> tuple[pl.DataType, str, str]:
        logical = prop.logicalType
        physical = (prop.physicalType or "").strip().upper() or None
        if physical is None:
            if logical not in _LOGICAL_DEFAULTS:
                raise self.fail(
                    f"{where}.logicalType",
                    f"{logical!r}: give a physicalType or one of {sorted(_LOGICAL_DEFAULTS)}",
                )
            physical = _LOGICAL_DEFAULTS[logical]
        dtype, family = _physical_dtype(physical) or (None, None)
        if dtype is None:
            raise self.fail(
                f"{where}.physicalType", f"unsupported DuckDB type {prop.physicalType!r}"
            )
        if logical is not None and logical != family:
            raise self.fail(
                f"{where}.logicalType", f"{logical!r} does not match physicalType {physical!r}"
            )
        options = prop.logicalTypeOptions or {}
        if family == "timestamp" and options.get("timezone") and dtype == pl.Datetime("us"):
            dtype, physical = pl.Datetime("us", "UTC"), "TIMESTAMPTZ"
        return dtype, physical, family or "string"

    def _primary_key(self, columns: Sequence[Column]) -> tuple[str, ...]:
        keyed = [c for c in columns if c.primary_key]
        if len(keyed) <= 1:
            return tuple(c.name for c in keyed)
        positions = [c.primary_key_position for c in keyed]
        if sorted(p or 0 for p in positions) != list(range(1, len(keyed) + 1)):
            raise self.fail(
                "schema[0].properties.primaryKeyPosition",
                f"a composite primary key needs positions 1..{len(keyed)}, got {positions}",
            )
        return tuple(c.name for c in sorted(keyed, key=lambda c: c.primary_key_position or 0))

    # -- rules ------
    # What a rule kind means is its module's (``contracts/kinds/<kind>.py``): the loader only
    # finds the kind an ODCS declaration or quality item selects (by the registry's attributes)
    # and hands it the item with what every rule shares.

    def _property_rules(
        self, dataset: DatasetName, index: int, prop: SchemaProperty, column: Column
    ) -> list[Rule]:
        where = f"schema[0].properties[{index}] ({column.name})"
        declared = self._declared_constraints(where, prop, column)
        explicit: list[Rule] = []
        for j, item in enumerate(prop.quality or []):
            item_where = f"{where}.quality[{j}]" + (f" ({item.name})" if item.name else "")
            rule = self._item_rule(
                dataset, item_where, item, column=column, declared=declared, by_name={}
            )
            if rule is not None:
                explicit.append(rule)
        covered = {r.kind for r in explicit}
        synthesised = [
            _declared_rule(dataset, column, kind(name), params)
            for name, params in declared.items()
            if name not in covered
        ]
        return synthesised + explicit

    def _declared_constraints(
        self, where: str, prop: SchemaProperty, column: Column
    ) -> dict[RuleKind, dict[str, Any]]:
        """Constraints the property declares in standard ODCS fields, by rule kind."""
        declared: dict[RuleKind, dict[str, Any]] = {}
        options = dict(prop.logicalTypeOptions or {})
        for declaring in declaring_kinds():
            params = declaring.declared(self, where, prop, column, options)
            if params is not None:
                declared[declaring.name] = params
        unenforced = sorted(set(options) - _DESCRIPTIVE_OPTIONS)
        if unenforced:
            raise self.fail(
                f"{where}.logicalTypeOptions",
                f"{', '.join(unenforced)} not enforced by this platform; express it as a pattern "
                "or range so it is checked",
            )
        return declared

    def _item_rule(
        self,
        dataset: DatasetName,
        where: str,
        item: DataQuality,
        *,
        column: Column | None,
        declared: dict[RuleKind, dict[str, Any]],
        by_name: dict[str, Column],
    ) -> Rule | None:
        """The rule one ODCS quality item declares, or ``None`` for items other tools run."""
        item_type = (item.type or "library").lower()
        if item_type == "text":
            return None
        if item_type == "custom" and (item.engine or "") != ENGINE:
            return None
        rule_id = self._rule_id(dataset, where, item, column)
        severity = self._severity(where, item)
        blocking = self.custom_property(item.customProperties, "blocking", where) or False
        if not isinstance(blocking, bool):
            raise self.fail(f"{where}.customProperties.blocking", "expected true or false")
        if blocking and severity != "error":
            raise self.fail(f"{where}.customProperties.blocking", "only error rules can block")
        if not item.description or not item.description.strip():
            raise self.fail(f"{where}.description", "say why the rule exists")
        common: dict[str, Any] = {
            "id": rule_id,
            "column": column.name if column else None,
            "severity": severity,
            "blocking": blocking,
            "description": " ".join(item.description.split()),
            "dimension": item.dimension,
        }
        if item_type == "library":
            selected = self._library_kind(where, item, column, declared, rule_id)
        elif item_type == "custom":
            selected = self._custom_kind(where, item)
        else:
            selected = self._typed_kind(where, item, item_type)
        compiled = Item(
            where=where,
            item=item,
            column=column,
            declared=declared,
            by_name=by_name,
            common=common,
        )
        return selected.compile(self, compiled)

    def _library_kind(
        self,
        where: str,
        item: DataQuality,
        column: Column | None,
        declared: dict[RuleKind, dict[str, Any]],
        rule_id: str,
    ) -> Kind:
        """The kind of a ``type: library`` item: the one that claims its metric; for a metric
        several kinds share (``invalidValues``), the one its arguments (or, without arguments,
        the property's declarations) select."""
        metric = item.metric or item.rule
        registered = kinds().values()
        candidates = [k for k in registered if metric in k.metrics]
        if not candidates:
            known = sorted({m for k in registered for m in k.metrics})
            raise self.fail(f"{where}.metric", f"unsupported metric {metric!r}: {', '.join(known)}")
        if len(candidates) == 1:
            return candidates[0]
        args = set(item.arguments or {})
        unknown = sorted(args - {a for k in candidates for a in k.arguments})
        if unknown:
            raise self.fail(f"{where}.arguments", f"unsupported arguments {unknown}")
        given = [k for k in candidates if k.arguments & args]
        if len(given) > 1:
            raise self.fail(f"{where}.arguments", "one constraint per rule: split it in two items")
        if given:
            return given[0]
        # No arguments: the item describes a constraint declared on the property.
        if column is None:
            raise self.fail(
                f"{where}.metric", f"{metric} checks a column: declare it on the property"
            )
        found = [k.name for k in candidates if k.name in declared]
        suffix = rule_id.rsplit(".", 1)[-1]
        if len(found) > 1 and suffix in found:
            found = [suffix]
        if len(found) != 1:
            raise self.fail(
                f"{where}.arguments",
                f"{metric} without arguments needs exactly one of "
                f"{', '.join(k.name for k in candidates)} declared on the property "
                f"(found {found or 'none'})",
            )
        return kind(found[0])

    def _custom_kind(self, where: str, item: DataQuality) -> Kind:
        """The kind an engine ``data-products`` item names: ``implementation: {kind: <name>}``."""
        impl = item.implementation
        custom = {k.name: k for k in kinds().values() if k.custom_keys is not None}
        name = impl.get("kind") if isinstance(impl, dict) else None
        if not isinstance(name, str) or name not in custom:
            raise self.fail(
                f"{where}.implementation", f"expected {{kind: {' | '.join(custom)}, ...}}"
            )
        return custom[name]

    def _typed_kind(self, where: str, item: DataQuality, item_type: str) -> Kind:
        """The kind of another ODCS item type (``sql``)."""
        for candidate in kinds().values():
            if item_type in candidate.item_types:
                return candidate
        raise self.fail(f"{where}.type", f"unsupported quality type {item.type!r}")

    # -- rule parts ------

    def _rule_id(
        self, dataset: DatasetName, where: str, item: DataQuality, column: Column | None
    ) -> str:
        rule_id = item.name or ""
        if not _RULE_ID.fullmatch(rule_id):
            raise self.fail(
                f"{where}.name", f"{rule_id!r}: a rule id is <dataset>.<column>.<rule> (snake case)"
            )
        dataset_part, column_part, _ = rule_id.split(".")
        if dataset_part != dataset.name:
            raise self.fail(f"{where}.name", f"{rule_id!r} must start with {dataset.name}.")
        if column is not None and column_part != column.name:
            raise self.fail(
                f"{where}.name", f"{rule_id!r} must be {dataset.name}.{column.name}.<rule>"
            )
        return rule_id

    def _severity(self, where: str, item: DataQuality) -> Severity:
        severity = (item.severity or "error").lower()
        if severity in ("warn", "warning"):
            return "warning"
        if severity == "error":
            return "error"
        raise self.fail(f"{where}.severity", f"{item.severity!r}: expected error or warning")

    def _operators(self, item: DataQuality) -> list[tuple[str, Any]]:
        return [(op, getattr(item, op)) for op in _OPERATORS if getattr(item, op) is not None]

    def threshold(self, where: str, item: DataQuality) -> float:
        """Tolerated share of failing rows, from the ODCS operator on the failing-row metric."""
        operators = self._operators(item)
        if not operators:
            return DEFAULT_THRESHOLD_PCT
        (op, value), unit = operators[0], (item.unit or "rows").lower()
        if op == "mustBe" and value == 0:
            return 0.0
        if unit == "percent" and op == "mustBeLessOrEqualTo" and 0 <= value <= 100:
            return float(value)
        raise self.fail(
            f"{where}.{op}",
            "row rules take `mustBe: 0` or `unit: percent` with `mustBeLessOrEqualTo: <0..100>`",
        )

    def comparison(self, where: str, item: DataQuality) -> Comparison:
        operators = self._operators(item)
        if len(operators) != 1:
            raise self.fail(where, "give exactly one mustBe* operator")
        op, value = operators[0]
        if op in ("mustBeBetween", "mustNotBeBetween"):
            return Comparison(op, (float(value[0]), float(value[1])))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}.{op}", f"{value!r}: expected a number")
        return Comparison(op, float(value))

    def pattern(self, where: str, pattern: Any) -> dict[str, Any]:
        if not isinstance(pattern, str):
            raise self.fail(where, "expected a regular expression string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.fail(where, f"invalid regular expression {pattern!r}: {exc}") from None
        return {"pattern": pattern}

    def range(self, where: str, bounds: dict[str, Any], column: Column) -> dict[str, Any]:
        if column.logical_type not in ("integer", "number"):
            raise self.fail(
                where, f"ranges apply to numeric columns; {column.name} is {column.physical_type}"
            )
        for key, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(f"{where}.{key}", f"{value!r}: expected a number")
        if "minimum" in bounds and "exclusiveMinimum" in bounds:
            raise self.fail(where, "give minimum or exclusiveMinimum, not both")
        if "maximum" in bounds and "exclusiveMaximum" in bounds:
            raise self.fail(where, "give maximum or exclusiveMaximum, not both")
        low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
        high = bounds.get("maximum", bounds.get("exclusiveMaximum"))
        if low is not None and high is not None and low > high:
            raise self.fail(where, f"empty range: {low} > {high}")
        return {
            "minimum": None if low is None else float(low),
            "maximum": None if high is None else float(high),
            "exclusive_minimum": "exclusiveMinimum" in bounds,
            "exclusive_maximum": "exclusiveMaximum" in bounds,
        }

    def custom_property(self, props: list[CustomProperty] | None, name: str, where: str) -> Any:
        """``customProperties`` entry ``name``: ``None`` if absent; given twice, an error."""
        values = [p.value for p in props or [] if p.property == name]
        if len(values) > 1:
            raise self.fail(f"{where}.customProperties", f"{name!r} is given {len(values)} times")
        return values[0] if values else None

    def _check_unique_ids(self, rules: Sequence[Rule]) -> None:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise self.fail("quality", f"rule id {rule.id!r} is declared twice")
            if rule.check_name in PLATFORM_CHECK_NAMES:
                raise self.fail("quality", f"rule id {rule.id!r} collides with a platform check")
            seen.add(rule.id)


# --------------------------------------------------------------------------------------------
# Helpers


def _physical_dtype(physical: str) -> tuple[pl.DataType, str] | None:
    if physical in _PHYSICAL_TYPES:
        return _PHYSICAL_TYPES[physical]
    if match := _DECIMAL.fullmatch(physical):
        return pl.Decimal(int(match[1]), int(match[2])), "number"
    if physical.endswith("[]"):
        inner = _physical_dtype(physical[:-2].strip())
        return (pl.List(inner[0]), "array") if inner else None
    return None


def _duration(value: Any, unit: str) -> timedelta | None:
    if isinstance(value, bool):
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return None
    if amount <= 0:
        return None
    return timedelta(seconds=amount * _SECONDS_PER_UNIT[unit])


def _declared_rule(
    dataset: DatasetName, column: Column, declaring: Kind, params: dict[str, Any]
) -> Rule:
    """A rule for a constraint declared on a property without a quality item describing it."""
    rule = Rule(
        id=f"{dataset.name}.{column.name}.{declaring.name}",
        column=column.name,
        kind=declaring.name,
        severity="error",
        blocking=False,
        description="",
        declared_in_contract=False,
        **params,
    )
    return replace(rule, description=declaring.declared_why(rule))


__all__ = [
    "CONTRACTS_DIR",
    "ENGINE",
    "PLATFORM_CHECK_NAMES",
    "discover_contracts",
    "load_contract",
    "load_contract_for",
]
