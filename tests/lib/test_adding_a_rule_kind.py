"""Adding a rule kind is adding one module: a kind written in a temporary package (on
``sys.path``, added to the registry's packages) compiles from an ODCS ``custom`` item,
quarantines the rows it fails with its reason and reports its own asset check, with no other
file changed. A kind module without ``KIND``, or a kind name given twice, fails loudly."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from data_products.lib.contracts import ContractError, evaluate_checks, load_contract, registry
from data_products.lib.contracts.expressions import failure_expr, failure_sql
from data_products.lib.quarantine import split
from tests.lib.test_contracts import DAY, FILE, WIDGETS, widget_frame, widget_row, write_contract

# The whole of a new kind: one module, as it would sit in data_products/lib/contracts/kinds/.
DIVISIBLE_BY = '''
"""``divisible_by``: an integer column is a multiple of ``implementation.divisor``."""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from data_products.lib.contracts.frames import needs_column, sql_identifier, sql_number
from data_products.lib.contracts.kinds._custom import compile_custom
from data_products.lib.contracts.model import Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


class DivisibleBy(Kind):
    name = "divisible_by"
    row_rule = True
    custom_keys = frozenset({"divisor"})
    uses_threshold = True
    pandera_check = True

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        threshold = compile_custom(self, compiler, item, needs_column=True)
        assert isinstance(item.item.implementation, dict)
        divisor = item.item.implementation.get("divisor")
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise compiler.fail(
                f"{item.where}.implementation.divisor", f"{divisor!r}: expected an integer >= 1"
            )
        return Rule(
            kind=self.name,
            threshold_pct=threshold,
            parameters=(("divisor", divisor),),
            **item.common,
        )

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        divisor = rule.parameter("divisor")
        return (pl.col(needs_column(rule)) % divisor != 0).fill_null(False)

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        column = sql_identifier(needs_column(rule))
        return f"coalesce({column} % {sql_number(rule.parameter('divisor'))} <> 0, FALSE)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        return [f"{rule.column}=", value, f" is not a multiple of {rule.parameter('divisor')}"]

    def constraint_text(self, rule: Rule) -> str:
        return f"a multiple of {rule.parameter('divisor')}"


KIND = DivisibleBy()
'''

EVEN_SIZES = """          - name: widgets.size.even
            description: Sizes come in pairs.
            type: custom
            engine: data-products
            implementation: {kind: divisible_by, divisor: 2}
"""

_TYPE_ITEM = "            implementation: {kind: type}\n"


@pytest.fixture
def kind_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, str]], str]]:
    """Writes a package of kind modules (name → source) and adds it to the registry's packages."""

    def add(modules: dict[str, str]) -> str:
        package = f"extra_kinds_{uuid.uuid4().hex[:8]}"
        root = tmp_path / "kind_packages" / package
        root.mkdir(parents=True)
        (root / "__init__.py").write_text('"""Rule kinds of a test."""\n', encoding="utf-8")
        for name, source in modules.items():
            (root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.setattr(registry, "KIND_PACKAGES", (*registry.KIND_PACKAGES, package))
        registry.clear_kinds()
        return package

    monkeypatch.syspath_prepend(str(tmp_path / "kind_packages"))
    yield add
    registry.clear_kinds()


def test_a_kind_added_as_one_module_compiles_quarantines_and_checks(
    tmp_path: Path, kind_package: Callable[[dict[str, str]], str]
) -> None:
    assert WIDGETS.count(_TYPE_ITEM) == 1
    text = WIDGETS.replace(_TYPE_ITEM, _TYPE_ITEM + EVEN_SIZES)
    path = write_contract(tmp_path / "contracts", text)
    # Before the module exists, the contract names a kind nobody knows.
    with pytest.raises(ContractError, match=r"\(widgets\.size\.even\)\.implementation: expected"):
        load_contract(path)

    kind_package({"divisible_by": DIVISIBLE_BY})
    assert "divisible_by" in registry.row_kinds()
    contract = load_contract(path)
    rule = contract.rule("widgets.size.even")
    assert (rule.kind, rule.parameter("divisor"), rule.threshold_pct) == ("divisible_by", 2, 5.0)
    assert rule in contract.row_rules()

    good, odd = widget_row(2, size=4, size__raw="4"), widget_row(3, size=3, size__raw="3")
    typed = widget_frame([good, odd])
    # One meaning in both engines: the DuckDB predicate agrees with the polars expression.
    con = duckdb.connect()
    con.register("typed", typed.select("size").to_arrow())
    in_sql = [
        r[0] for r in con.execute(f"SELECT {failure_sql(rule, ['size'])} FROM typed").fetchall()
    ]
    assert in_sql == typed.select(failure_expr(rule, ["size"])).to_series().to_list()
    assert in_sql == [False, True]

    result = split(typed, contract)
    assert result.rule_failures == {"widgets.size.even": 1}
    assert result.published.get_column("_source_line").to_list() == [2]
    quarantined = result.quarantined.row(0, named=True)
    assert quarantined["rule_id"] == "widgets.size.even"
    assert (
        quarantined["reason"] == f"widgets.size.even: size=3 is not a multiple of 2 ({FILE} line 3)"
    )
    assert result.rows_in == result.published.height + result.quarantined.height

    specs = {s.name: s for s in contract.check_specs()}
    spec = specs["widgets__size__even"]
    assert spec.metadata["kind"] == "divisible_by"
    assert "a multiple of 2" in (spec.description or "")
    results = evaluate_checks(contract, result, con=None, partition_keys=[DAY.isoformat()])
    assert [r.check_name for r in results] == list(specs)
    checks = {r.check_name: r for r in results}
    even = checks["widgets__size__even"]
    assert not even.passed  # 1 of 2 rows: over the default 5 %
    assert even.metadata["failing_rows"].value == 1
    assert even.metadata["failing_rows_quarantined"].value is True
    assert "size=3 is not a multiple of 2" in (even.description or "")
    # The kind's pandera check holds on what the split published.
    assert checks["schema"].passed


def test_a_kind_module_without_kind_fails_loudly(
    kind_package: Callable[[dict[str, str]], str],
) -> None:
    package = kind_package({"forgotten": '"""A kind module that never defines KIND."""\n'})
    with pytest.raises(TypeError, match=rf"{package}\.forgotten: a rule kind module defines KIND"):
        registry.kinds()


def test_a_kind_name_given_twice_fails_loudly(
    kind_package: Callable[[dict[str, str]], str],
) -> None:
    again = DIVISIBLE_BY.replace('name = "divisible_by"', 'name = "flag"')
    package = kind_package({"flag_again": again})
    with pytest.raises(TypeError, match=rf"{package}: rule kind 'flag' is already registered"):
        registry.kinds()


def test_two_modules_of_one_package_with_one_kind_name_fail_loudly(
    kind_package: Callable[[dict[str, str]], str],
) -> None:
    package = kind_package({"divisible_by": DIVISIBLE_BY, "multiple_of": DIVISIBLE_BY})
    with pytest.raises(
        TypeError, match=rf"{package}\.multiple_of: rule kind 'divisible_by' is defined twice"
    ):
        registry.kinds()
