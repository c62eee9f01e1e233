"""Invariants of the whole asset graph: the key grammar, ownership, and contract coverage.

These are what keep a data mesh navigable as domains are added by people who never talk to each
other: every asset says who owns it and what it is, and every published dataset has a contract.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from data_products.lib.contracts import discover_contracts
from data_products.lib.domains import load_domains
from data_products.lib.keys import LAYERS, DatasetName
from data_products.lib.policy import DERIVED_TAGS, QUARANTINE_ROLE_TAG, TABLE_NAME, storage_kinds

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from data_products.definitions import defs

    dg.Definitions.validate_loadable(defs)
    return defs


@pytest.fixture(scope="module")
def specs(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    graph = defs.resolve_asset_graph()
    return {node.key: node.to_asset_spec() for node in graph.asset_nodes if node.is_materializable}


def test_key_grammar_group_owner_description_kinds(specs: dict[dg.AssetKey, dg.AssetSpec]) -> None:
    domains = load_domains()
    assert specs, "no assets discovered"
    for key, spec in specs.items():
        name = DatasetName.from_key(key)  # raises unless [domain, layer, name]
        assert name.layer in LAYERS
        assert name.domain in domains, (
            f"{key}: no descriptor data_products/domains/{name.domain}.yaml"
        )
        assert spec.group_name == name.domain, f"{key}: group {spec.group_name} != domain"
        assert spec.owners, f"{key}: no owner"
        assert spec.description and spec.description.strip(), f"{key}: no description"
        assert spec.kinds, f"{key}: no kinds"
        assert spec.tags.get("layer") == name.layer or name.layer == "gold", f"{key}: layer tag"


def test_every_published_dataset_has_a_contract_and_every_contract_an_asset(
    specs: dict[dg.AssetKey, dg.AssetSpec],
) -> None:
    contracts = discover_contracts()
    published = {
        key
        for key, spec in specs.items()
        if DatasetName.from_key(key).layer in ("silver", "gold")
        and spec.tags.get(QUARANTINE_ROLE_TAG) != "quarantine"
    }
    assert published - set(contracts) == set(), "datasets without a contract"
    assert set(contracts) - set(specs) == set(), "contracts without an asset"


@pytest.fixture(scope="module")
def unpolicied() -> dg.Definitions:
    """What the domains declare, before ``apply_platform_policy`` derives anything."""
    import assets
    import sensors
    from data_products.lib.discovery import discover

    return discover(assets, sensors)


def test_domains_leave_every_derivable_field_to_platform_policy(
    unpolicied: dg.Definitions,
) -> None:
    """Group, owner, storage kinds, layer and role tags, table name, pool and backfill policy
    follow from the key, the domain descriptor, the contract and the asset's resources
    (``data_products.lib.policy``): an asset that sets one by hand states a second time what
    policy already knows, and drifts."""
    contracts = discover_contracts()
    found = [
        a for a in unpolicied.assets or [] if isinstance(a, dg.AssetsDefinition | dg.AssetSpec)
    ]
    assert found
    by_hand: list[str] = []
    for item in found:
        specs = [item] if isinstance(item, dg.AssetSpec) else list(item.specs)
        resource_keys = set() if isinstance(item, dg.AssetSpec) else item.required_resource_keys
        for spec in specs:
            key = spec.key.to_user_string()
            dbt = "dbt" in spec.kinds  # dagster-dbt fills some fields itself; dbt.py sets none
            if spec.group_name not in (None, "default"):
                by_hand.append(f"{key}: group_name")
            if spec.owners:
                by_hand.append(f"{key}: owners")
            by_hand += [f"{key}: tag {t}" for t in DERIVED_TAGS if t in spec.tags]
            if TABLE_NAME in spec.metadata and not dbt:
                by_hand.append(f"{key}: {TABLE_NAME}")
            if not dbt:  # dagster-dbt names the adapter's store itself
                derived = storage_kinds(spec, contracts, resource_keys)
                by_hand += [f"{key}: kind {kind}" for kind in sorted(spec.kinds & derived)]
        if isinstance(item, dg.AssetsDefinition) and item.is_executable:
            name = item.node_def.name
            if getattr(item.node_def, "pool", None):
                by_hand.append(f"{name}: pool")
            if item.backfill_policy is not None and not any("dbt" in s.kinds for s in item.specs):
                by_hand.append(f"{name}: backfill_policy")
    assert by_hand == []


def test_policy_gives_warehouse_assets_the_pool_and_every_asset_a_single_run_backfill(
    defs: dg.Definitions,
) -> None:
    for item in defs.assets or []:
        if not isinstance(item, dg.AssetsDefinition) or not item.is_executable:
            continue
        uses_warehouse = "warehouse" in item.required_resource_keys
        assert item.op.pool == ("warehouse" if uses_warehouse else None), item.node_def.name
        assert item.backfill_policy == dg.BackfillPolicy.single_run(), item.node_def.name
        for spec in item.specs:
            table = spec.metadata.get(TABLE_NAME)
            expected = f"warehouse.{DatasetName.from_key(spec.key).table}"
            assert (table == expected) if uses_warehouse else table is None, spec.key


def test_every_asset_names_its_store(specs: dict[dg.AssetKey, dg.AssetSpec]) -> None:
    """A kind saying where the data lives (derived by policy, or Feast's own for the ml store)."""
    stores = {"duckdb", "parquet", "iceberg", "delta", "postgres", "feast", "sqlite"}
    for key, spec in specs.items():
        assert spec.kinds & stores, f"{key}: kinds {sorted(spec.kinds)} name no store"


def test_owners_come_from_the_domain_descriptor(specs: dict[dg.AssetKey, dg.AssetSpec]) -> None:
    domains = load_domains()
    for key, spec in specs.items():
        assert spec.owners == [domains[DatasetName.from_key(key).domain].owner], key


def test_domain_output_ports_exist(specs: dict[dg.AssetKey, dg.AssetSpec]) -> None:
    for domain in load_domains().values():
        for product in domain.data_products:
            for port in product.output_ports:
                assert DatasetName.from_key(port).asset_key in specs, f"{domain.name}: {port}"


def test_partitioned_assets_backfill_as_one_run(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for node in graph.asset_nodes:
        if node.is_materializable and node.partitions_def is not None:
            policy = node.backfill_policy
            assert policy is not None and policy.max_partitions_per_run is None, node.key


def test_source_layer_is_external_and_every_external_asset_is_a_source(
    defs: dg.Definitions,
) -> None:
    for node in defs.resolve_asset_graph().asset_nodes:
        name = DatasetName.from_key(node.key)
        assert (name.layer == "source") == (not node.is_materializable), node.key
        if name.layer == "source":
            assert node.metadata.get("dagster/uri"), f"{node.key}: a source names where it lives"


def test_every_asset_has_checks_or_is_bronze(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    checked = {check.asset_key for check in graph.asset_check_keys}
    for node in graph.asset_nodes:
        name = DatasetName.from_key(node.key)
        if (
            node.is_materializable
            and name.layer == "silver"
            and not name.name.endswith("_quarantine")
        ):
            assert node.key in checked, f"{node.key}: no checks"


def test_cli_validates_definitions() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
