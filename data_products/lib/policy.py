"""Platform policy: every spec field that follows from the key, the domain descriptor or the
asset's resources, set once here for every asset however it was built (the factories in
``bronze``/``silver``, dagster-dbt in ``dbt``, hand-written ``@asset``/``@multi_asset``).

Domains declare key, deps, description, checks, and the facts only they know (kinds naming the
engine in the asset's body, the ``tier`` tag, metadata of their own); the rest is derived:

- group: the key's domain;
- owners: the domain descriptor (``data_products/domains/<domain>.yaml``), the only place an
  owner is declared (contracts and dbt models inherit it);
- tags ``layer`` (the key's layer) and ``data_products/role: quarantine`` (a dataset named
  ``<name>_quarantine``);
- ``dagster/table_name`` ``warehouse.<domain>_<layer>.<name>`` and the ``warehouse`` pool, for
  assets that use the warehouse resource (DuckDB has one writer);
- ``BackfillPolicy.single_run()`` on every executable asset: a range runs as one run from the
  UI and the CLI (Dagster requires it of every asset selected for ``--partition-range``,
  unpartitioned ones included);
- code version: the contract file's content hash, for contract-governed assets without one
  (dagster-dbt sets the model's own).

``tests/test_definitions.py`` builds the definitions without this policy and fails when any
domain sets one of these fields by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import dagster as dg

from data_products.lib.compat.dagster_assets import with_pool_and_backfill_policy
from data_products.lib.contracts import Contract
from data_products.lib.domains import domain as domain_descriptor
from data_products.lib.keys import DatasetName
from data_products.lib.partitions import SINGLE_RUN
from data_products.lib.warehouse import WAREHOUSE_KEY

WAREHOUSE_POOL = "warehouse"
"""DuckDB has a single writer: every asset that uses the warehouse shares this pool."""

QUARANTINE_ROLE_TAG = "data_products/role"
"""``quarantine`` on a dataset's quarantine: rejected rows, not a product of its own."""

QUARANTINE_SUFFIX = "_quarantine"

TABLE_NAME = "dagster/table_name"

DERIVED_TAGS = ("layer", QUARANTINE_ROLE_TAG)
"""Tags policy owns; a domain that sets one by hand fails the graph test."""


def apply_spec_policy(
    assets_def: dg.AssetsDefinition | dg.AssetSpec, contracts: Mapping[dg.AssetKey, Contract]
) -> dg.AssetsDefinition | dg.AssetSpec:
    """``assets_def`` (or a bare external spec) with every derivable field set (see the module
    docstring)."""
    if isinstance(assets_def, dg.AssetSpec):
        return derive_spec(assets_def, contracts, uses_warehouse=False)
    uses_warehouse = WAREHOUSE_KEY in assets_def.required_resource_keys
    mapped = assets_def.map_asset_specs(
        lambda spec: derive_spec(spec, contracts, uses_warehouse=uses_warehouse)
    )
    if not assets_def.is_executable:
        return mapped
    return with_pool_and_backfill_policy(
        mapped,
        pool=WAREHOUSE_POOL if uses_warehouse else None,
        backfill_policy=SINGLE_RUN,
    )


def derive_spec(
    spec: dg.AssetSpec, contracts: Mapping[dg.AssetKey, Contract], *, uses_warehouse: bool
) -> dg.AssetSpec:
    """One spec with group, owners, derived tags, table name and code version set."""
    name = DatasetName.from_key(spec.key)
    tags = {**spec.tags, "layer": name.layer}
    if name.name.endswith(QUARANTINE_SUFFIX):
        tags[QUARANTINE_ROLE_TAG] = "quarantine"
    metadata = dict(spec.metadata)
    if uses_warehouse:
        metadata[TABLE_NAME] = f"warehouse.{name.table}"
    contract = contracts.get(spec.key)
    code_version = spec.code_version
    if code_version is None and contract is not None:
        code_version = _content_hash(contract)
    return spec.replace_attributes(
        group_name=name.domain,
        owners=[domain_descriptor(name.domain).owner],
        tags=tags,
        metadata=metadata,
        code_version=code_version,
    )


def _content_hash(contract: Contract) -> str:
    """The contract file's content: a changed contract is a changed asset definition."""
    return hashlib.sha256(contract.path.read_bytes()).hexdigest()[:16]
