"""The contract compiler: loading and its errors, rule kinds, pandera schemas, check specs and
results, freshness; and the commerce contracts against the shared data model (MODEL.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandera.errors
import polars as pl
import pytest

from data_products.lib.contracts import (
    CONTRACTS_DIR,
    PLATFORM_CHECK_NAMES,
    Contract,
    ContractError,
    discover_contracts,
    evaluate_checks,
    load_contract,
    load_contract_for,
)
from data_products.lib.domains import load_domains
from data_products.lib.quarantine import SplitResult, split

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "assets" / "commerce" / "MODEL.md"
COMMERCE = ["fx_rates", "customers", "products", "orders", "order_lines"]
DAY = date(2026, 1, 3)
FILE = "shop/2026-01-03/widgets.csv"

# A contract that uses every supported rule kind once, written the way domains write theirs.
WIDGETS = r"""
apiVersion: v3.2.0
kind: DataContract
id: shop.silver.widgets
version: 1.0.0
status: active
schema:
  - name: widgets
    physicalName: shop_silver.widgets
    description: One row per widget delivered on a day.
    properties:
      - name: widget_id
        logicalType: string
        physicalType: VARCHAR
        primaryKey: true
        required: true
        logicalTypeOptions:
          pattern: '^W\d{3}$'
        description: Widget id.
        quality:
          - name: widgets.widget_id.required
            description: Nothing can be joined without an id.
            type: library
            metric: nullValues
            unit: percent
            mustBeLessOrEqualTo: 5
            customProperties:
              - property: blocking
                value: true
      - name: color
        logicalType: string
        physicalType: VARCHAR
        enum: [{value: red}, {value: blue}]
        description: Paint colour.
      - name: size
        logicalType: integer
        physicalType: INTEGER
        description: Size class.
        quality:
          - name: widgets.size.type
            description: Sizes are whole numbers.
            type: custom
            engine: data-products
            implementation: {kind: type}
          - name: widgets.size.range
            description: Only sizes 1 to 10 are made.
            type: library
            metric: invalidValues
            arguments: {minimum: 1, maximum: 10}
            unit: percent
            mustBeLessOrEqualTo: 50
      - name: weight
        logicalType: number
        physicalType: DOUBLE
        logicalTypeOptions: {exclusiveMinimum: 0, maximum: 5}
        description: Weight in kg.
      - name: label
        logicalType: string
        physicalType: VARCHAR
        description: Printed label.
        quality:
          - name: widgets.label.encoding
            description: Undecodable bytes would print as garbage.
            type: custom
            engine: data-products
            implementation: {kind: encoding}
          - name: widgets.label.pattern
            description: Labels are upper case, but a lower-case one is still usable.
            type: library
            metric: invalidValues
            arguments: {pattern: '^[A-Z ]+$'}
            severity: warning
            unit: percent
            mustBeLessOrEqualTo: 5
      - name: serial
        logicalType: string
        physicalType: VARCHAR
        unique: true
        description: Factory serial number.
      - name: made_at
        logicalType: timestamp
        physicalType: TIMESTAMP
        description: When it was made (UTC).
      - name: vendor
        logicalType: string
        physicalType: VARCHAR
        description: Who made it.
        quality:
          - name: widgets.vendor.other_tool
            description: Run by another tool; this platform ignores it.
            type: custom
            engine: soda
            implementation: "missing_count(vendor) = 0"
          - name: widgets.vendor.known_vendor
            description: Vendors should be registered before they deliver.
            type: sql
            query: >-
              SELECT count(*) FROM {table}
              WHERE {partition_filter} AND vendor NOT IN ('acme', 'globex')
            mustBe: 0
            severity: warning
    quality:
      - name: widgets.approval.granted
        description: Only approved widgets are sold.
        type: custom
        engine: data-products
        implementation: {kind: flag, flag: _approved, message: not approved}
      - name: widgets.rows.minimum
        description: A day with fewer than two widgets is a partial drop.
        type: library
        metric: rowCount
        mustBeGreaterOrEqualTo: 2
        severity: warning
"""


def write_contract(root: Path, text: str, *, domain: str = "shop", name: str = "widgets") -> Path:
    path = root / domain / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def widgets(tmp_path: Path) -> Contract:
    return load_contract(write_contract(tmp_path, WIDGETS))


def widget_row(line: int, **changes: object) -> dict[str, object]:
    """A typed row that passes every rule; ``changes`` breaks what a test needs broken."""
    row: dict[str, object] = {
        "widget_id": f"W{line:03d}",
        "widget_id__raw": f"W{line:03d}",
        "color": "red",
        "size": 3,
        "size__raw": "3",
        "weight": 1.5,
        "label": "BIG WIDGET",
        "label__raw": "BIG WIDGET",
        "serial": f"S-{line}",
        "made_at": None,
        "vendor": "acme",
        "_approved": True,
        "partition_date": DAY,
        "_source_file": FILE,
        "_source_line": line,
    }
    row.update(changes)
    return row


def widget_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema_overrides={
            "size": pl.Int64,
            "weight": pl.Float64,
            "made_at": pl.Datetime("us"),
            "size__raw": pl.String,
            "widget_id": pl.String,
            "_approved": pl.Boolean,
        },
    )


# --------------------------------------------------------------------------------------------
# The commerce contracts


def test_every_commerce_contract_loads_with_unique_valid_check_names() -> None:
    contracts = discover_contracts()
    keys = {str(k.to_user_string()) for k in contracts}
    assert {f"commerce/silver/{name}" for name in COMMERCE} <= keys
    for key, contract in contracts.items():
        assert contract.key == key
        assert contract.path == (CONTRACTS_DIR / key.path[0] / f"{key.path[2]}.yaml").resolve()
        names = [spec.name for spec in contract.check_specs()]
        assert len(names) == len(set(names)), f"{key}: duplicate check names"
        assert all(re.fullmatch(r"[A-Za-z0-9_]+", n) for n in names), names
        keyless = set() if contract.primary_key else {"primary_key_unique"}
        assert PLATFORM_CHECK_NAMES - {"row_count"} - keyless <= set(names)
        for rule in contract.rules:
            assert re.fullmatch(rf"{key.path[2]}\.[a-z0-9_]+\.[a-z0-9_]+", rule.id), rule.id
            assert rule.description.strip(), rule.id
        assert all(c.description for c in contract.columns)
        assert contract.owner == load_domains()[key.path[0]].owner, key
        assert contract.odcs.team is None, f"{key}: the owner is declared in the descriptor"


def _model_tables() -> dict[str, dict[str, object]]:
    """The silver table of MODEL.md: columns, types, annotations and primary key per dataset."""
    tables: dict[str, dict[str, object]] = {}
    for line in MODEL.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\| (\w+) \| (.+) \| ([\w, ]+) \|", line.strip())
        if not match or match[1] in ("dataset",):
            continue
        columns = {}
        # Split on commas outside parentheses: "segment VARCHAR in (consumer, business, vip)".
        for part in re.split(r",\s*(?![^()]*\))", match[2]):
            name, dtype, *rest = part.split(" ", 2)
            columns[name] = (dtype, rest[0] if rest else "")
        tables[match[1]] = {"columns": columns, "key": [k.strip() for k in match[3].split(",")]}
    return tables


def _model_range(note: str) -> tuple[float | None, float | None, bool, bool] | None:
    """``(>0)``, ``(≥1)``, ``(1…100)``, ``(0 < x ≤ 10000)`` → (low, high, low_excl, high_excl)."""
    if m := re.search(r"\((\d+) < x ≤ (\d+)\)", note):
        return float(m[1]), float(m[2]), True, False
    if m := re.search(r"\((\d+)…(\d+)\)", note):
        return float(m[1]), float(m[2]), False, False
    if m := re.search(r"\(>(\d+)\)", note):
        return float(m[1]), None, True, False
    if m := re.search(r"\(≥(\d+)\)", note):
        return float(m[1]), None, False, False
    return None


@pytest.mark.parametrize("dataset", COMMERCE)
def test_commerce_contract_matches_the_data_model(dataset: str) -> None:
    model = _model_tables()[dataset]
    contract = load_contract_for(f"commerce.silver.{dataset}")
    assert contract.physical_table == f"commerce_silver.{dataset}"
    assert list(contract.primary_key) == model["key"]
    declared = {c.name: c for c in contract.columns if c.name != "partition_date"}
    expected: dict[str, tuple[str, str]] = model["columns"]  # type: ignore[assignment]
    assert list(declared) == list(expected)
    for name, (dtype, note) in expected.items():
        column = declared[name]
        assert column.physical_type == dtype, name
        assert column.pii == ("(pii)" in note), name
        rules = {r.kind: r for r in contract.rules if r.column == name}
        if m := re.search(r"`(.+)`", note):
            assert rules["pattern"].pattern == m[1]
        if m := re.search(r"in \((.+)\)", note):
            assert set(rules["valid_values"].values) == {v.strip() for v in m[1].split(",")}
        if bounds := _model_range(note):
            r = rules["range"]
            assert (r.minimum, r.maximum, r.exclusive_minimum, r.exclusive_maximum) == bounds


def test_rule_ids_named_in_the_data_model_exist() -> None:
    ids = {r.id for c in discover_contracts().values() for r in c.rules}
    text = MODEL.read_text(encoding="utf-8")
    for rule_id in re.findall(r"`((?:orders|order_lines)\.[a-z_]+\.[a-z_]+)`", text):
        assert rule_id in ids, rule_id
    for dataset in COMMERCE:
        assert f"{dataset}.primary_key.duplicate" in ids


def test_price_alias_and_lake_server() -> None:
    lines = load_contract_for("commerce/silver/order_lines")
    assert lines.column("unit_price_local").aliases == ("unit_price", "price")
    assert lines.publishes_to_iceberg
    assert not load_contract_for(
        dg.AssetKey(["commerce", "silver", "customers"])
    ).publishes_to_iceberg


def test_blocking_checks_are_the_critical_rules_and_platform_checks() -> None:
    specs = {s.name: s for s in load_contract_for("commerce.silver.orders").check_specs()}
    assert specs["orders__order_id__required"].blocking
    assert not specs["orders__status__valid_values"].blocking
    assert not specs["orders__customer_id__known_customer"].blocking
    for name in ("rows_reconcile", "primary_key_unique", "schema"):
        assert specs[name].blocking, name
    for name in ("row_count", "unexpected_columns"):
        assert not specs[name].blocking, name
    assert all(s.asset_key == dg.AssetKey(["commerce", "silver", "orders"]) for s in specs.values())


# --------------------------------------------------------------------------------------------
# Loading errors name the file and the field

_MUTATIONS = [
    (
        "typo",
        (
            "            mustBeLessOrEqualTo: 50\n",
            "            mustBeLessOrEqualTo: 50\n            mustbe: 0\n",
        ),
        r"quality\[1\] \(widgets\.size\.range\).*'mustbe' was unexpected",
    ),
    ("yaml", ("kind: DataContract", "kind: [DataContract"), r"invalid YAML: line \d+ column \d+"),
    (
        "top_level",
        ("kind: DataContract", "kind: DataContract\nowner: me"),
        r"'owner' was unexpected",
    ),
    ("layer", ("id: shop.silver.widgets", "id: shop.platinum.widgets"), r"id: invalid layer"),
    (
        "type",
        ("physicalType: INTEGER", "physicalType: INTEGR"),
        r"\(size\)\.physicalType: .*INTEGR",
    ),
    (
        "logical",
        ("logicalType: integer", "logicalType: string"),
        r"\(size\)\.logicalType: 'string' does not match physicalType 'INTEGER'",
    ),
    (
        "rule_id",
        ("name: widgets.size.range", "name: widgets.sise.range"),
        r"\(widgets\.sise\.range\)\.name: .* must be widgets\.size\.<rule>",
    ),
    (
        "severity",
        (
            "GreaterOrEqualTo: 2\n        severity: warning",
            "GreaterOrEqualTo: 2\n        severity: fatal",
        ),
        r"\(widgets\.rows\.minimum\)\.severity: 'fatal'",
    ),
    (
        "threshold",
        ("mustBeLessOrEqualTo: 50", "mustBeGreaterThan: 50"),
        r"\(widgets\.size\.range\)\.mustBeGreaterThan: row rules take",
    ),
    (
        "description",
        ("        description: Paint colour.\n", ""),
        r"\(color\)\.description: every column says what it holds",
    ),
    (
        "blocking_warning",
        (
            "            severity: warning\n            unit: percent",
            "            severity: warning\n"
            "            customProperties: [{property: blocking, value: true}]\n"
            "            unit: percent",
        ),
        r"\(widgets\.label\.pattern\)\.customProperties\.blocking: only error rules can block",
    ),
    (
        "placeholder",
        ("WHERE {partition_filter}", "WHERE {partition}"),
        r"\(widgets\.vendor\.known_vendor\)\.query: unknown placeholders \['partition'\]",
    ),
    (
        "unenforced",
        ("{exclusiveMinimum: 0, maximum: 5}", "{exclusiveMinimum: 0, maximum: 5, multipleOf: 1}"),
        r"\(weight\)\.logicalTypeOptions: multipleOf not enforced",
    ),
    (
        "physical_name",
        ("physicalName: shop_silver.widgets", "physicalName: shop.widgets"),
        r"schema\[0\]\.physicalName: 'shop\.widgets' must be 'shop_silver\.widgets'",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [m[1:] for m in _MUTATIONS], ids=[m[0] for m in _MUTATIONS]
)
def test_loading_errors_name_the_file_and_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in WIDGETS
    path = write_contract(tmp_path, WIDGETS.replace(old, new, 1))
    with pytest.raises(ContractError) as raised:
        load_contract(path)
    message = str(raised.value)
    assert str(path) in message
    assert re.search(expected, message), message


def test_missing_file_and_misplaced_contract(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"nowhere\.yaml: contract file not found"):
        load_contract(tmp_path / "nowhere.yaml")
    with pytest.raises(ContractError, match="no contract for shop/silver/sprockets"):
        load_contract_for("shop.silver.sprockets", root=tmp_path)
    write_contract(tmp_path, WIDGETS, name="gadgets")
    with pytest.raises(
        ContractError, match=r"gadgets\.yaml: id: shop\.silver\.widgets must live in"
    ):
        discover_contracts(tmp_path)


def test_a_changed_file_is_reloaded(tmp_path: Path) -> None:
    path = write_contract(tmp_path, WIDGETS)
    assert load_contract(path).rule("widgets.size.range").threshold_pct == 50
    path.write_text(WIDGETS.replace("mustBeLessOrEqualTo: 50", "mustBeLessOrEqualTo: 7.5"))
    assert load_contract(path).rule("widgets.size.range").threshold_pct == 7.5


def test_the_owner_is_the_domain_descriptors(tmp_path: Path, widgets: Contract) -> None:
    """Declared once, in data_products/domains/<domain>.yaml; the contract names no team."""
    assert widgets.odcs.team is None
    assert widgets.owner == "team:shop"  # tests/lib/fixtures/shop.yaml
    same = WIDGETS.replace("status: active\n", "status: active\nteam:\n  name: shop\n")
    assert load_contract(write_contract(tmp_path / "same", same)).owner == "team:shop"


def test_a_contract_naming_another_team_is_refused(tmp_path: Path) -> None:
    other = WIDGETS.replace("status: active\n", "status: active\nteam:\n  name: payments\n")
    with pytest.raises(
        ContractError, match=r"team\.name: 'payments' is not 'team:shop'.*domains/shop\.yaml"
    ):
        load_contract(write_contract(tmp_path, other))


def test_a_contract_of_a_domain_without_descriptor_is_refused(tmp_path: Path) -> None:
    text = WIDGETS.replace("shop.silver.widgets", "nowhere.silver.widgets").replace(
        "shop_silver.widgets", "nowhere_silver.widgets"
    )
    with pytest.raises(ContractError, match=r"id: unknown domain 'nowhere'"):
        load_contract(write_contract(tmp_path, text, domain="nowhere"))


# --------------------------------------------------------------------------------------------
# Compiling rules


def test_rules_compile_from_quality_items_and_property_declarations(widgets: Contract) -> None:
    rules = {r.id: r for r in widgets.rules}
    # Declared on the property, described by a quality item: the item's metadata wins.
    assert rules["widgets.widget_id.required"].blocking
    assert rules["widgets.widget_id.required"].declared_in_contract
    # Declared on the property only: a default rule with the grammar's id.
    pattern = rules["widgets.widget_id.pattern"]
    assert (pattern.kind, pattern.pattern, pattern.declared_in_contract) == (
        "pattern",
        r"^W\d{3}$",
        False,
    )
    assert rules["widgets.color.valid_values"].values == ("red", "blue")
    weight = rules["widgets.weight.range"]
    assert (weight.minimum, weight.maximum, weight.exclusive_minimum) == (0, 5, True)
    assert rules["widgets.serial.unique"].kind == "unique"
    assert rules["widgets.size.range"].threshold_pct == 50
    assert rules["widgets.label.pattern"].severity == "warning"
    assert rules["widgets.approval.granted"].flag == "_approved"
    assert rules["widgets.rows.minimum"].comparison.holds(2)
    assert not rules["widgets.rows.minimum"].comparison.holds(1)
    assert "widgets.vendor.other_tool" not in rules  # another engine's rule
    assert widgets.primary_key == ("widget_id",)
    # Contract order: property rules in property order, schema rules, then the primary key.
    order = [r.id for r in widgets.rules]
    assert order.index("widgets.size.type") < order.index("widgets.size.range")
    assert order.index("widgets.vendor.known_vendor") < order.index("widgets.approval.granted")
    assert order[-1] == "widgets.primary_key.duplicate"
    assert [r.id for r in widgets.row_rules()] == [r.id for r in widgets.rules if r.is_row_rule]


def test_contradicting_declarations_are_refused(tmp_path: Path) -> None:
    text = WIDGETS.replace(
        "        description: Printed label.\n",
        "        description: Printed label.\n        logicalTypeOptions: {pattern: '^[a-z]+$'}\n",
    )
    with pytest.raises(ContractError, match=r"\(widgets\.label\.pattern\)\.arguments: contradicts"):
        load_contract(write_contract(tmp_path, text))


# --------------------------------------------------------------------------------------------
# Every rule kind, passing and failing

_ROW_KIND_CASES = [
    # (rule id, changes that break it, expected reason fragment, quarantined?)
    (
        "widgets.widget_id.required",
        {"widget_id": None, "widget_id__raw": " "},
        "widget_id is empty",
        True,
    ),
    (
        "widgets.widget_id.pattern",
        {"widget_id": "X1", "widget_id__raw": "X1"},
        r"widget_id=X1 does not match ^W\d{3}$",
        True,
    ),
    ("widgets.color.valid_values", {"color": "green"}, "color=green not in [red, blue]", True),
    (
        "widgets.size.type",
        {"size": None, "size__raw": "1.5"},
        "size=1.5 is not a valid INTEGER",
        True,
    ),
    ("widgets.size.range", {"size": 11}, "size=11 outside [1, 10]", True),
    ("widgets.weight.range", {"weight": 0.0}, "weight=0.0 outside (0, 5]", True),
    (
        "widgets.label.encoding",
        {"label__raw": "BIG W\ufffdDGET"},
        "has undecodable bytes (U+FFFD)",
        True,
    ),
    ("widgets.label.pattern", {"label": "big widget"}, "label=big widget does not match", False),
    (
        "widgets.approval.granted",
        {"_approved": False},
        "widgets.approval.granted: not approved",
        True,
    ),
    ("widgets.approval.granted", {"_approved": None}, "not approved", True),
]


@pytest.mark.parametrize(
    ("rule_id", "changes", "reason", "quarantined"),
    _ROW_KIND_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(_ROW_KIND_CASES)],
)
def test_row_rule_kinds_pass_and_fail(
    widgets: Contract,
    rule_id: str,
    changes: dict,
    reason: str,
    quarantined: bool,
) -> None:
    good, bad = widget_row(2), widget_row(3, **changes)
    result = split(widget_frame([good, bad]), widgets)
    assert result.rule_failures == {rule_id: 1}
    assert result.published.get_column("_source_line").to_list() == ([2] if quarantined else [2, 3])
    sample = result.samples[rule_id][0]
    assert (sample["file"], sample["line"], sample["rule"]) == (FILE, 3, rule_id)
    assert reason in sample["reason"] and f"({FILE} line 3)" in sample["reason"]
    if quarantined:
        row = result.quarantined.row(0, named=True)
        assert (row["rule_id"], row["_source_line"], row["severity"]) == (rule_id, 3, "error")
        assert row["reason"] == sample["reason"]
    else:
        assert result.quarantined.is_empty()


def test_required_uses_the_typed_value_without_a_raw_column(widgets: Contract) -> None:
    rows = [widget_row(2), widget_row(3, widget_id=None)]
    frame = widget_frame(rows).drop("widget_id__raw")
    result = split(frame, widgets)
    assert result.quarantined.get_column("rule_id").to_list() == ["widgets.widget_id.required"]


def test_type_rule_passes_a_parsed_value_and_ignores_empty_text(widgets: Contract) -> None:
    rows = [widget_row(2, size__raw="2.0", size=2), widget_row(3, size=None, size__raw="")]
    result = split(widget_frame(rows), widgets)
    assert result.rule_failures == {}  # empty is a required rule's business; size is optional
    assert result.published.height == 2


def test_first_failing_rule_wins_and_all_are_listed(widgets: Contract) -> None:
    bad = widget_row(3, color="green", size=50, label="lower")
    result = split(widget_frame([widget_row(2), bad]), widgets)
    row = result.quarantined.row(0, named=True)
    assert row["rule_id"] == "widgets.color.valid_values"
    assert row["failed_rules"] == [
        "widgets.color.valid_values",
        "widgets.size.range",
        "widgets.label.pattern",
    ]


def _checks(
    contract: Contract, result: SplitResult, **kwargs: Any
) -> dict[str, dg.AssetCheckResult]:
    results = evaluate_checks(contract, result, partition_keys=["2026-01-03"], **kwargs)
    return {r.check_name: r for r in results}


def test_check_results_match_specs_and_carry_evidence(widgets: Contract) -> None:
    rows = [widget_row(i) for i in range(2, 22)]  # 20 rows
    rows[4] = widget_row(6, size=11)  # 1 of 20 = 5 %: within a 50 % threshold
    rows[5] = widget_row(7, color="green")  # 1 of 20 = 5 %: the default threshold, passes
    result = split(widget_frame(rows), widgets)
    checks = _checks(widgets, result, con=None)
    assert list(checks) == [s.name for s in widgets.check_specs()]
    colour = checks["widgets__color__valid_values"]
    assert colour.passed and colour.severity == dg.AssetCheckSeverity.ERROR
    assert colour.metadata["failing_rows"].value == 1
    assert colour.metadata["rows_evaluated"].value == 20
    assert colour.metadata["threshold_pct"].value == 5.0
    assert colour.metadata["partitions"].value == "2026-01-03"
    assert (
        f"| {FILE} | 7 | widgets.color.valid_values | color | green |"
        in colour.metadata["failing_sample"].value
    )
    assert colour.description.startswith("widgets.color.valid_values: 1 of 20 rows (5.00 %)")
    assert f"first: widgets.color.valid_values: color=green not in [red, blue] ({FILE} line 7)" in (
        colour.description
    )
    assert checks["rows_reconcile"].passed
    assert checks["rows_reconcile"].metadata["rows_quarantined"].value == 2


def test_threshold_exceeded_fails_the_check(widgets: Contract) -> None:
    rows = [widget_row(i) for i in range(2, 22)]
    rows[0], rows[1] = widget_row(2, color="green"), widget_row(3, color="pink")  # 2 of 20 = 10 %
    rows[2:5] = [widget_row(line, label="lower") for line in (4, 5, 6)]  # warning rule, 15 %
    checks = _checks(widgets, split(widget_frame(rows), widgets), con=None)
    assert not checks["widgets__color__valid_values"].passed
    label = checks["widgets__label__pattern"]
    assert not label.passed and label.severity == dg.AssetCheckSeverity.WARN
    assert label.metadata["failing_rows_quarantined"].value is False


def test_unique_row_count_drift_and_schema_checks(widgets: Contract) -> None:
    rows = [
        widget_row(2, serial="S-1"),
        widget_row(3, serial="S-1", _extra_columns='{"coupon": "X"}'),
    ]
    frame = widget_frame(rows)
    checks = _checks(widgets, split(frame, widgets), con=None)
    unique = checks["widgets__serial__unique"]
    assert not unique.passed and unique.metadata["failing_rows"].value == 2
    assert checks["widgets__rows__minimum"].passed  # 2 rows >= 2
    drift = checks["unexpected_columns"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert drift.metadata["unexpected_columns"].value == ["coupon"]
    # The split does not enforce non-key uniqueness, so the schema (blocking) leaves it to the
    # unique rule's own check and threshold.
    assert checks["schema"].passed
    one = _checks(widgets, split(widget_frame(rows[:1]), widgets), con=None)
    assert not one["widgets__rows__minimum"].passed
    assert one["widgets__rows__minimum"].severity == dg.AssetCheckSeverity.WARN


# --------------------------------------------------------------------------------------------
# Checks against the written tables (DuckDB)


def _write(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    schema = table.split(".")[0]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.register("frame_view", frame.to_arrow())
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM frame_view")
    con.unregister("frame_view")


def test_sql_rules_reconciliation_and_table_wide_keys_use_the_warehouse(widgets: Contract) -> None:
    rows = [widget_row(2), widget_row(3, vendor="initech"), widget_row(4, color="green")]
    result = split(widget_frame(rows), widgets)
    con = duckdb.connect()
    without = _checks(widgets, result, con=None)
    assert not without["widgets__vendor__known_vendor"].passed
    assert "no warehouse connection" in without["widgets__vendor__known_vendor"].description

    _write(con, "shop_silver.widgets", result.published)
    _write(con, "shop_silver.widgets_quarantine", result.quarantined)
    checks = _checks(widgets, result, con=con)
    vendor = checks["widgets__vendor__known_vendor"]
    assert not vendor.passed and vendor.metadata["value"].value == 1
    assert vendor.severity == dg.AssetCheckSeverity.WARN
    assert checks["rows_reconcile"].passed
    assert checks["primary_key_unique"].passed

    # A row lost on the way to the table, and a key re-delivered by another partition.
    _write(con, "shop_silver.widgets_quarantine", result.quarantined.clear())
    later = result.published.head(1).with_columns(pl.lit(date(2026, 1, 2)).alias("partition_date"))
    _write(con, "shop_silver.widgets", pl.concat([result.published, later]))
    checks = _checks(widgets, result, con=con)
    assert not checks["rows_reconcile"].passed
    assert "tables hold 2 published and 0 quarantined" in checks["rows_reconcile"].description
    key_check = checks["primary_key_unique"]
    assert not key_check.passed
    assert key_check.metadata["duplicate_keys_in_table"].value == 1
    assert "W002" in key_check.description

    # A chunk before a run's last one leaves the table-wide scan to the last chunk, which
    # looks for the keys of every partition the run wrote.
    early = _checks(widgets, result, con=con, table_partition_keys=[])["primary_key_unique"]
    assert early.passed and "duplicate_keys_in_table" not in early.metadata
    last = _checks(widgets, result, con=con, table_partition_keys=["2026-01-02", "2026-01-03"])
    assert last["primary_key_unique"].metadata["duplicate_keys_in_table"].value == 1
    assert not last["primary_key_unique"].passed

    # A run over one partition of a longer table looks only at its own keys elsewhere.
    other = result.published.with_columns(
        pl.lit(date(2026, 1, 1)).alias("partition_date"), pl.col("widget_id") + "-old"
    )
    _write(con, "shop_silver.widgets", pl.concat([result.published, later, other]))
    narrow = _checks(widgets, result, con=con)["primary_key_unique"]
    assert narrow.metadata["duplicate_keys_in_table"].value == 1


def test_sql_rule_errors_are_reported_not_raised(widgets: Contract) -> None:
    result = split(widget_frame([widget_row(2)]), widgets)
    checks = _checks(widgets, result, con=duckdb.connect())
    assert not checks["widgets__vendor__known_vendor"].passed
    assert "query failed" in checks["widgets__vendor__known_vendor"].description


def test_row_count_is_per_partition(widgets: Contract) -> None:
    rows = [widget_row(2), widget_row(3)]
    result = split(widget_frame(rows), widgets)
    results = evaluate_checks(
        widgets, result, con=None, partition_keys=["2026-01-03", "2026-01-04"]
    )
    check = {r.check_name: r for r in results}["widgets__rows__minimum"]
    assert not check.passed
    assert check.metadata["rows_by_partition"].value == {"2026-01-03": 2, "2026-01-04": 0}
    assert check.metadata["partitions"].value == "2026-01-03...2026-01-04 (2 partitions)"


# --------------------------------------------------------------------------------------------
# pandera


def _published_lines() -> pl.DataFrame:
    row = {
        "order_id": "O000000001",
        "line_no": 1,
        "product_id": "P00001",
        "quantity": 2,
        "unit_price_local": 10.0,
        "unit_price_usd": 10.0,
        "line_amount_usd": 20.0,
        "partition_date": DAY,
        "_source_file": "commerce/2026-01-03/orders.csv",
        "_source_line": 2,
    }
    second = {**row, "line_no": 2, "_source_line": 3}
    return pl.DataFrame([row, second]).with_columns(pl.col("line_no", "quantity").cast(pl.Int32))


def test_pandera_schema_accepts_good_frames() -> None:
    schema = load_contract_for("commerce.silver.order_lines").pandera_schema()
    schema.validate(_published_lines())
    schema.validate(
        _published_lines().with_columns(pl.lit(None, pl.String).alias("_extra_columns"))
    )


_BAD_FRAMES = {
    "dtype": lambda f: f.with_columns(pl.col("quantity").cast(pl.Int64)),
    "null": lambda f: f.with_columns(pl.lit(None, pl.String).alias("order_id")),
    "pattern": lambda f: f.with_columns(pl.lit("X1").alias("order_id")),
    "range": lambda f: f.with_columns(pl.lit(1000, pl.Int32).alias("quantity")),
    "exclusive_minimum": lambda f: f.with_columns(pl.lit(0.0).alias("unit_price_local")),
    "duplicate_key": lambda f: f.with_columns(pl.lit(1, pl.Int32).alias("line_no")),
    "unknown_column": lambda f: f.with_columns(pl.lit(1).alias("surprise")),
    "missing_column": lambda f: f.drop("product_id"),
}


@pytest.mark.parametrize("breakage", list(_BAD_FRAMES))
def test_pandera_schema_rejects_bad_frames(breakage: str) -> None:
    schema = load_contract_for("commerce.silver.order_lines").pandera_schema()
    with pytest.raises(pandera.errors.SchemaErrors):
        schema.validate(_BAD_FRAMES[breakage](_published_lines()), lazy=True)


def test_warning_rules_are_not_in_the_pandera_schema() -> None:
    schema = load_contract_for("commerce.silver.customers").pandera_schema()
    frame = pl.DataFrame(
        {
            "partition_date": [DAY],
            "customer_id": ["C000001"],
            "email": ["not-an-email"],  # warning rule: published on purpose
            "full_name": ["Ana"],
            "country": ["PT"],
            "segment": ["vip"],
            "signup_date": [DAY],
            "updated_at": [None],
            "_source_file": ["f"],
            "_source_line": [2],
        },
        schema_overrides={"updated_at": pl.Datetime("us")},
    )
    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        schema.validate(frame, lazy=True)
    failing = set(raised.value.failure_cases.get_column("column").drop_nulls().to_list())
    assert failing == {"updated_at"}  # required; the malformed email is not a schema failure


# --------------------------------------------------------------------------------------------
# Freshness and column schema


def test_freshness_policy_compiled_from_sla_properties(tmp_path: Path) -> None:
    policy = load_contract_for("commerce.silver.orders").freshness_policy()
    assert isinstance(policy, dg.FreshnessPolicy)
    assert policy.fail_window.to_timedelta() == timedelta(days=1)
    assert policy.warn_window.to_timedelta() == timedelta(hours=18)
    assert load_contract_for("commerce.silver.customers").freshness_policy() is None
    assert dg.AssetSpec("orders", freshness_policy=policy).freshness_policy == policy

    sla = "slaProperties:\n  - property: latency\n    value: 6\n    unit: h\n"
    hourly = load_contract(write_contract(tmp_path, WIDGETS + sla)).freshness_policy()
    assert hourly.fail_window.to_timedelta() == timedelta(hours=6)
    assert hourly.warn_window is None
    for broken, message in [
        (sla.replace("unit: h", "unit: fortnight"), r"slaProperties\[0\] \(latency\)\.unit"),
        (sla.replace("value: 6\n    unit: h", "value: 30\n    unit: s"), "at least 60 seconds"),
        (
            sla + "    customProperties: [{property: warnAfter, value: 7}]\n",
            r"warnAfter: 7 must be a positive number below value",
        ),
    ]:
        with pytest.raises(ContractError, match=message):
            load_contract(write_contract(tmp_path, WIDGETS + broken, name="widgets"))


def test_column_schema_has_descriptions_constraints_and_pii() -> None:
    contract = load_contract_for("commerce.silver.customers")
    schema = contract.column_schema()
    columns = {c.name: c for c in schema.columns}
    assert columns["email"].tags == {"pii": "true"}
    assert columns["customer_id"].constraints.nullable is False
    assert any("^C\\d{6}$" in o for o in columns["customer_id"].constraints.other)
    assert {"_source_file", "_source_line"} <= set(columns)
    assert "_extra_columns" not in columns
    assert all(c.description for c in schema.columns)
    assert contract.tags["pii"] == "true"
    drifted = contract.column_schema(pl.DataFrame({"_extra_columns": ["{}"]}))
    assert "_extra_columns" in {c.name for c in drifted.columns}


# --------------------------------------------------------------------------------------------
# In Dagster


def test_specs_and_results_work_in_a_materialisation(widgets: Contract) -> None:
    rows = [widget_row(i) for i in range(2, 12)]
    rows[3] = widget_row(5, color="green", label="BIG W\ufffdDGET")

    @dg.multi_asset(
        specs=[dg.AssetSpec(widgets.key, freshness_policy=widgets.freshness_policy())],
        check_specs=widgets.check_specs(),
    )
    def _widgets() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        result = split(widget_frame(rows), widgets)
        yield dg.MaterializeResult(asset_key=widgets.key)
        yield from evaluate_checks(widgets, result, con=None, partition_keys=["2026-01-03"])

    outcome = dg.materialize([_widgets], raise_on_error=False)
    assert outcome.success
    evaluations = {e.check_name: e for e in outcome.get_asset_check_evaluations()}
    assert set(evaluations) == {s.name for s in widgets.check_specs()}
    assert not evaluations["widgets__color__valid_values"].passed  # 1 of 10 > 5 %
    assert evaluations["widgets__color__valid_values"].blocking is False
    assert evaluations["widgets__widget_id__required"].passed
    assert evaluations["widgets__widget_id__required"].blocking is True
    assert evaluations["rows_reconcile"].passed and evaluations["rows_reconcile"].blocking
