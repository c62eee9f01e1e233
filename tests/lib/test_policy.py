"""Platform policy (``data_products.lib.policy``) and the one Dagster internal it relies on
(``data_products.lib.compat.dagster_assets``): derived fields on an asset that declares none,
and pins that fail when dagster changes what the workaround rebuilds."""

# No `from __future__ import annotations`: dagster inspects the asset function's annotations.
import inspect
from importlib.metadata import version

import dagster as dg
from dagster._core.definitions.op_definition import OpDefinition

from data_products.lib.compat.dagster_assets import PINNED_DAGSTER, with_pool_and_backfill_policy
from data_products.lib.contracts import discover_contracts
from data_products.lib.policy import (
    QUARANTINE_ROLE_TAG,
    WAREHOUSE_POOL,
    apply_spec_policy,
    storage_kinds,
)

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@dg.resource
def _warehouse(_: dg.InitResourceContext) -> str:
    return "a warehouse"


def _bare(key: list[str], *, resources: set[str]) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name="__".join(key),
        specs=[
            dg.AssetSpec(key, description="made by the test"),
            dg.AssetSpec([*key[:-1], f"{key[-1]}_quarantine"], description="its rejects"),
        ],
        partitions_def=DAYS,
        required_resource_keys=resources,
    )
    def _step(context: dg.AssetExecutionContext):
        for spec in context.assets_def.specs:
            yield dg.MaterializeResult(asset_key=spec.key)

    return _step


def test_policy_derives_every_field_an_asset_leaves_out() -> None:
    derived = apply_spec_policy(
        _bare(["commerce", "silver", "widgets"], resources={"warehouse"}), discover_contracts()
    )
    assert isinstance(derived, dg.AssetsDefinition)
    published, quarantine = derived.specs
    assert published.group_name == "commerce"
    assert published.owners == ["team:commerce"]  # data_products/domains/commerce.yaml
    assert published.tags["layer"] == "silver"
    assert QUARANTINE_ROLE_TAG not in published.tags
    assert quarantine.tags[QUARANTINE_ROLE_TAG] == "quarantine"
    assert published.metadata["dagster/table_name"] == "warehouse.commerce_silver.widgets"
    assert derived.op.pool == WAREHOUSE_POOL
    assert derived.backfill_policy == dg.BackfillPolicy.single_run()


def test_an_asset_without_the_warehouse_gets_no_pool_and_no_table_name() -> None:
    derived = apply_spec_policy(
        _bare(["cdc", "silver", "widgets"], resources=set()), discover_contracts()
    )
    assert isinstance(derived, dg.AssetsDefinition)
    assert derived.op.pool is None
    assert (
        "dagster/table_name"
        not in derived.specs_by_key[dg.AssetKey(["cdc", "silver", "widgets"])].metadata
    )
    assert derived.backfill_policy == dg.BackfillPolicy.single_run()


def test_contract_governed_assets_get_the_contract_hash_as_code_version() -> None:
    contracts = discover_contracts()
    key = dg.AssetKey(["commerce", "silver", "orders"])
    derived = apply_spec_policy(
        _bare(["commerce", "silver", "orders"], resources={"warehouse"}), contracts
    )
    assert isinstance(derived, dg.AssetsDefinition)
    code_version = derived.specs_by_key[key].code_version
    assert code_version and len(code_version) == 16
    assert (
        derived.specs_by_key[dg.AssetKey(["commerce", "silver", "orders_quarantine"])].code_version
        is None
    )


def test_storage_kinds_come_from_the_contract_servers() -> None:
    """commerce/silver/orders declares the warehouse view, its Parquet files and an Iceberg
    replica; its quarantine sits next to it but is not published to the lake."""
    derived = apply_spec_policy(
        _bare(["commerce", "silver", "orders"], resources={"warehouse"}), discover_contracts()
    )
    assert isinstance(derived, dg.AssetsDefinition)
    orders = derived.specs_by_key[dg.AssetKey(["commerce", "silver", "orders"])]
    rejects = derived.specs_by_key[dg.AssetKey(["commerce", "silver", "orders_quarantine"])]
    assert orders.kinds == {"duckdb", "parquet", "iceberg"}
    assert rejects.kinds == {"duckdb", "parquet"}


def test_the_contract_not_the_resources_names_the_store() -> None:
    """The cdc mirror reads PostgreSQL but lives in Iceberg and Delta (its contract's servers)."""
    derived = apply_spec_policy(
        _bare(["cdc", "silver", "customers"], resources={"postgres", "lake"}), discover_contracts()
    )
    assert isinstance(derived, dg.AssetsDefinition)
    assert derived.specs_by_key[dg.AssetKey(["cdc", "silver", "customers"])].kinds == {
        "iceberg",
        "delta",
    }


def test_without_a_contract_the_resources_and_the_uri_name_the_store() -> None:
    contracts = discover_contracts()
    derived = apply_spec_policy(
        _bare(["commerce", "bronze", "widgets"], resources={"warehouse"}), contracts
    )
    assert isinstance(derived, dg.AssetsDefinition)
    assert derived.specs_by_key[dg.AssetKey(["commerce", "bronze", "widgets"])].kinds == {"duckdb"}
    source = dg.AssetSpec(
        ["cdc", "source", "widgets"],
        kinds={"custom"},
        metadata={"dagster/uri": "postgres://localhost:5432/db.public.widgets"},
    )
    assert storage_kinds(source, contracts, set()) == {"postgres"}
    external = apply_spec_policy(source, contracts)
    assert isinstance(external, dg.AssetSpec)
    assert external.kinds == {"custom", "postgres"}  # a declared kind stays
    unknown = dg.AssetSpec(["cdc", "source", "elsewhere"], metadata={"dagster/uri": "file:///x"})
    assert storage_kinds(unknown, contracts, set()) == set()


def test_the_rebuilt_op_runs_a_range_as_one_run_in_the_pool() -> None:
    derived = apply_spec_policy(
        _bare(["commerce", "silver", "widgets"], resources={"warehouse"}), discover_contracts()
    )
    assert isinstance(derived, dg.AssetsDefinition)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [derived],
            instance=instance,
            resources={"warehouse": _warehouse},
            tags={
                "dagster/asset_partition_range_start": "2026-01-01",
                "dagster/asset_partition_range_end": "2026-01-03",
            },
        )
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        key = dg.AssetKey(["commerce", "silver", "widgets"])
        assert instance.get_materialized_partitions(key) == {
            "2026-01-01",
            "2026-01-02",
            "2026-01-03",
        }
    assert derived.op.pool == WAREHOUSE_POOL


def test_pin_dagster_internals_the_workaround_rebuilds() -> None:
    """Fails on a dagster upgrade: re-check ``with_pool_and_backfill_policy`` against the new
    ``OpDefinition`` and ``AssetsDefinition`` internals, then move the pin."""
    assert version("dagster") == PINNED_DAGSTER
    parameters = set(inspect.signature(OpDefinition.dagster_internal_init).parameters)
    assert parameters == {
        "compute_fn",
        "name",
        "ins",
        "outs",
        "description",
        "config_schema",
        "required_resource_keys",
        "tags",
        "version",
        "retry_policy",
        "code_version",
        "pool",
    }
    attributes = set(_bare(["commerce", "silver", "pin"], resources=set()).get_attributes_dict())
    assert {"node_def", "backfill_policy", "specs", "hook_defs"} <= attributes


def test_unchanged_settings_return_the_same_definition() -> None:
    bare = _bare(["commerce", "silver", "same"], resources=set())
    assert with_pool_and_backfill_policy(bare, pool=None, backfill_policy=None) is bare
