"""The dbt wiring: folder rules and meta become keys, owners, tags and checks; ephemeral models
never become assets but lineage reaches through them; a missing manifest fails with the command
that fixes it. One ``dbt parse`` for the module, into its own target directory."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_dbt import DbtProject

from assets.commerce.partitions import DAILY
from data_products.lib.contracts import load_contract_for
from data_products.lib.dbt import (
    PREPARE_COMMAND,
    DbtLayoutError,
    DomainDbtTranslator,
    dbt_build_vars,
    dbt_range_env,
    domain_dbt_assets,
    gold_dataset,
    source_dataset,
    through_ephemeral_models,
)
from data_products.lib.dbt_project import DBT_PROJECT_DIR
from data_products.lib.domains import domain
from data_products.lib.keys import InvalidIdentifierError
from data_products.lib.policy import WAREHOUSE_POOL, apply_spec_policy

MARTS = DBT_PROJECT_DIR / "models" / "marts" / "commerce"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    parsed = DbtProject(DBT_PROJECT_DIR, target_path=tmp_path_factory.mktemp("dbt") / "target")
    parsed.preparer.prepare(parsed)
    return parsed


@pytest.fixture(scope="module")
def gold(project: DbtProject) -> dg.AssetsDefinition:
    # As the code location sees it: platform policy derives group, owner, pool and backfill.
    derived = apply_spec_policy(domain_dbt_assets("commerce", DAILY, project=project), {})
    assert isinstance(derived, dg.AssetsDefinition)
    return derived


def model_yaml(name: str) -> Mapping[str, Any]:
    return yaml.safe_load((MARTS / f"{name}.yml").read_text())["models"][0]


def mart_props(**overrides: Any) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "unique_id": "model.data_products.fct_orders",
        "original_file_path": "models/marts/commerce/fct_orders.sql",
        "fqn": ["data_products", "marts", "commerce", "fct_orders"],
        "name": "fct_orders",
        "schema": "commerce_gold",
        "alias": "fct_orders",
        "config": {"meta": {}},
        "columns": {},
        **overrides,
    }


def test_every_mart_model_and_nothing_else_is_a_gold_asset(gold: dg.AssetsDefinition) -> None:
    models = {path.stem for path in MARTS.glob("*.sql")}
    assert {key for key in gold.keys} == {dg.AssetKey(["commerce", "gold", m]) for m in models}
    assert not [key for key in gold.keys if key.path[-1].startswith(("stg_", "int_"))]


def test_gold_specs_carry_group_owner_kinds_tags_and_yaml_description(
    gold: dg.AssetsDefinition,
) -> None:
    for key, spec in gold.specs_by_key.items():
        name = key.path[-1]
        assert spec.group_name == "commerce"
        assert spec.owners == ["team:commerce"]  # the domain descriptor's
        assert spec.kinds == {"dbt", "duckdb"}
        assert spec.tags["layer"] == "gold"
        assert spec.description == " ".join(model_yaml(name)["description"].split())
        assert "Grain" in spec.description, f"{name}: the description must state the grain"
        assert spec.metadata["dagster/table_name"] == f"warehouse.commerce_gold.{name}"
    pii = {key.path[-1] for key, spec in gold.specs_by_key.items() if spec.tags["pii"] == "true"}
    assert pii == {"dim_customer"}  # the only model with a column tagged pii (email)


def test_gold_runs_as_one_single_run_backfill_in_the_warehouse_pool(
    gold: dg.AssetsDefinition,
) -> None:
    assert gold.partitions_def == DAILY
    assert gold.backfill_policy == dg.BackfillPolicy.single_run()
    assert gold.op.pool == WAREHOUSE_POOL
    assert gold.required_resource_keys >= {"dbt", "warehouse"}


def test_dependencies_skip_ephemeral_models_and_reach_silver(gold: dg.AssetsDefinition) -> None:
    deps = {
        key.path[-1]: {dep.asset_key.to_user_string() for dep in spec.deps}
        for key, spec in gold.specs_by_key.items()
    }
    assert deps["fct_orders"] == {
        "commerce/silver/orders",
        "commerce/silver/order_lines",
        "commerce/gold/dim_customer",
        "commerce/gold/dim_product",
    }
    assert deps["dim_customer"] == {"commerce/silver/customers"}
    assert deps["daily_revenue"] == {"commerce/silver/orders", "commerce/gold/dim_date"}


def test_data_tests_become_checks_and_error_severity_blocks(
    project: DbtProject, gold: dg.AssetsDefinition
) -> None:
    checks = {(spec.asset_key.path[-1], spec.name): spec for spec in gold.check_specs}
    assert (
        "fct_orders",
        "relationships_fct_orders_customer_sk__customer_sk__ref_dim_customer_",
    ) in (checks)
    assert ("dim_customer", "dim_customer_one_current_version_per_customer") in checks
    assert all(spec.blocking for spec in checks.values())  # every test has severity error
    assert {asset for asset, _ in checks} == {key.path[-1] for key in gold.keys}


def test_through_ephemeral_models_replaces_ephemeral_parents_by_their_ancestors() -> None:
    def model(name: str, materialized: str, parents: list[str]) -> dict[str, Any]:
        return {
            "resource_type": "model",
            "config": {"materialized": materialized},
            "depends_on": {"nodes": parents, "macros": ["macro.x"]},
        }

    manifest = {
        "nodes": {
            "model.p.stg_a": model("stg_a", "ephemeral", ["source.p.s.a"]),
            "model.p.stg_b": model("stg_b", "ephemeral", ["source.p.s.b"]),
            "model.p.int_ab": model("int_ab", "ephemeral", ["model.p.stg_a", "model.p.stg_b"]),
            "model.p.dim": model("dim", "table", ["model.p.stg_a"]),
            "model.p.fct": model("fct", "incremental", ["model.p.int_ab", "model.p.dim"]),
        },
        "sources": {},
        "parent_map": {
            "model.p.fct": ["model.p.int_ab", "model.p.dim"],
            "model.p.dim": ["model.p.stg_a"],
            "source.p.s.a": [],
        },
    }
    patched = through_ephemeral_models(manifest)
    fct = patched["nodes"]["model.p.fct"]
    assert fct["depends_on"]["nodes"] == ["source.p.s.a", "source.p.s.b", "model.p.dim"]
    assert fct["depends_on"]["macros"] == ["macro.x"]
    assert patched["parent_map"]["model.p.fct"] == ["source.p.s.a", "source.p.s.b", "model.p.dim"]
    assert patched["parent_map"]["model.p.dim"] == ["source.p.s.a"]
    assert patched["parent_map"]["source.p.s.a"] == []
    # Dagster's copy only: the input manifest is unchanged.
    assert manifest["nodes"]["model.p.fct"]["depends_on"]["nodes"] == [
        "model.p.int_ab",
        "model.p.dim",
    ]


def test_gold_dataset_follows_the_marts_folder_and_the_physical_table() -> None:
    assert str(gold_dataset(mart_props())) == "commerce/gold/fct_orders"
    staging_table = mart_props(
        fqn=["data_products", "staging", "commerce", "stg_commerce__orders"],
        name="stg_commerce__orders",
        original_file_path="models/staging/commerce/stg_commerce__orders.sql",
    )
    with pytest.raises(DbtLayoutError, match=r"stg_commerce__orders\.sql.*must stay ephemeral"):
        gold_dataset(staging_table)
    with pytest.raises(DbtLayoutError, match=r"writes main\.fct_orders"):
        gold_dataset(mart_props(schema="main"))
    with pytest.raises(InvalidIdentifierError):
        gold_dataset(mart_props(fqn=["data_products", "marts", "Bad-Domain", "fct_orders"]))


def test_source_dataset_from_meta_or_from_the_source_name() -> None:
    source = {
        "resource_type": "source",
        "unique_id": "source.data_products.commerce_silver.orders",
        "source_name": "commerce_silver",
        "name": "orders",
        "config": {"meta": {}},
    }
    assert str(source_dataset(source)) == "commerce/silver/orders"
    with_meta = source | {"config": {"meta": {"dagster": {"asset_key": ["crm", "silver", "x"]}}}}
    assert str(source_dataset(with_meta)) == "crm/silver/x"
    with pytest.raises(DbtLayoutError, match=r"set meta\.dagster\.asset_key"):
        source_dataset(source | {"source_name": "raw_stuff"})
    with pytest.raises(InvalidIdentifierError):
        source_dataset(source | {"config": {"meta": {"dagster": {"asset_key": ["a", "b"]}}}})


def test_the_translator_declares_no_owner_policy_takes_the_descriptors() -> None:
    """Owners are declared once, in the domain descriptor (issue 14): dbt ``meta`` adds none."""
    translator = DomainDbtTranslator()
    assert not translator.get_owners(mart_props())


def test_the_range_travels_in_the_environment_and_the_warehouse_as_a_var(
    tmp_path: Path,
) -> None:
    keys = ["2026-01-03", "2026-01-01", "2026-01-02"]
    assert dbt_range_env(keys) == {
        "DATA_PRODUCTS_DBT_MIN_DATE": "2026-01-01",
        "DATA_PRODUCTS_DBT_MAX_DATE": "2026-01-03",
    }
    assert dbt_range_env([]) == {
        "DATA_PRODUCTS_DBT_MIN_DATE": None,
        "DATA_PRODUCTS_DBT_MAX_DATE": None,
    }
    assert dbt_build_vars(tmp_path / "w.duckdb") == {"warehouse_path": str(tmp_path / "w.duckdb")}


def test_a_missing_manifest_names_the_command_that_prepares_it(tmp_path: Path) -> None:
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    with pytest.raises(FileNotFoundError, match="prepare-and-package"):
        domain_dbt_assets("commerce", DAILY, project=DbtProject(copy))
    assert "--file data_products/lib/dbt_project.py" in PREPARE_COMMAND


def test_a_domain_without_models_is_refused(project: DbtProject) -> None:
    with pytest.raises(DbtLayoutError, match="no dbt models"):
        domain_dbt_assets("flights", DAILY, project=project)


@pytest.mark.parametrize(
    "model_file",
    sorted(DBT_PROJECT_DIR.glob("models/marts/*/*.yml")),
    ids=lambda path: f"{path.parent.name}/{path.stem}",
)
def test_gold_contract_matches_the_dbt_model(model_file: Path) -> None:
    """The ODCS contract and the dbt model YAML both declare the columns; they must agree, and
    the contract's owner the domain's."""
    model = yaml.safe_load(model_file.read_text())["models"][0]
    contract = load_contract_for(f"{model_file.parent.name}/gold/{model['name']}")
    declared = [(column["name"], column["data_type"].upper()) for column in model["columns"]]
    assert [(column.name, column.physical_type) for column in contract.columns] == declared
    assert contract.physical_table == f"{model_file.parent.name}_gold.{model['name']}"
    pii = {c["name"] for c in model["columns"] if "pii" in c.get("config", {}).get("tags", [])}
    assert {column.name for column in contract.columns if column.pii} == pii
    assert contract.owner == domain(model_file.parent.name).owner
