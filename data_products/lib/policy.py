"""Platform policy: every spec field that follows from the key, the domain descriptor, the
contract or the asset's resources, set once here for every asset however it was built (the
factories in ``bronze``/``silver``, dagster-dbt in ``dbt``, hand-written ``@asset`` and
``@multi_asset``).

Domains declare key, deps, description, checks, and the facts only they know: the ``tier`` tag,
metadata of their own, and the kinds no declaration holds, i.e. the engine in the asset's body
(``polars``, ``sklearn``, ``sql``), a format it reads (``csv`` settlement files, ``json`` records),
and Feast with its SQLite online store (the feature store is built from settings by
``data_products.lib.feast_store``, not a resource or a contract server policy could read). The
bronze factory names its own store (``parquet``): bronze has no contract and the factory is its
only writer. The rest is derived:

- group: the key's domain;
- owners: the domain descriptor (``data_products/domains/<domain>.yaml``), the only place an
  owner is declared (contracts inherit it in ``Contract.owner``, dbt models through this policy);
- storage kinds (``storage_kinds``): the contract's ``servers`` (``duckdb``, ``iceberg``,
  ``postgres``, and files by their ``format``: ``parquet``, ``delta``); a quarantine is stored
  next to its dataset but never published to the lake (no ``iceberg``/``delta``); an asset
  without a contract gets the stores of the resources it requires (warehouse → ``duckdb``,
  postgres → ``postgres``), an external source the scheme of its ``dagster/uri``;
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
domain sets one of these fields (or a kind ``storage_kinds`` derives) by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set
from urllib.parse import urlsplit

import dagster as dg

from data_products.lib.compat.dagster_assets import with_pool_and_backfill_policy
from data_products.lib.contracts import Contract
from data_products.lib.domains import domain as domain_descriptor
from data_products.lib.keys import DatasetName
from data_products.lib.lineage.naming import URI_METADATA_KEY, metadata_value
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

POSTGRES_KEY = "postgres"
"""The resource key of the PostgreSQL source (``resources.postgres``; lib does not import it)."""

SERVER_KINDS: Mapping[str, str] = {
    "duckdb": "duckdb",
    "iceberg": "iceberg",
    "postgres": "postgres",
    "postgresql": "postgres",
}
"""ODCS server ``type`` → the kind naming that store."""

FILE_SERVERS = frozenset({"local", "s3", "azure", "sftp"})
"""ODCS server types that hold files: their kind is the file ``format`` (parquet, delta, csv)."""

LAKE_TABLE_KINDS = frozenset({"iceberg", "delta"})
"""Lake table formats a dataset is published in; its quarantine is not published there."""

RESOURCE_KINDS: Mapping[str, str] = {WAREHOUSE_KEY: "duckdb", POSTGRES_KEY: "postgres"}
"""The store an asset without a contract writes, by the resource it requires."""

URI_KINDS: Mapping[str, str] = {"postgres": "postgres", "postgresql": "postgres", "s3": "s3"}
"""An external source's kind, by the scheme of its ``dagster/uri``."""


def apply_spec_policy(
    assets_def: dg.AssetsDefinition | dg.AssetSpec, contracts: Mapping[dg.AssetKey, Contract]
) -> dg.AssetsDefinition | dg.AssetSpec:
    """``assets_def`` (or a bare external spec) with every derivable field set (see the module
    docstring)."""
    if isinstance(assets_def, dg.AssetSpec):
        return derive_spec(assets_def, contracts, resource_keys=frozenset())
    resource_keys = assets_def.required_resource_keys
    uses_warehouse = WAREHOUSE_KEY in resource_keys
    mapped = assets_def.map_asset_specs(
        lambda spec: derive_spec(spec, contracts, resource_keys=resource_keys)
    )
    if not assets_def.is_executable:
        return mapped
    return with_pool_and_backfill_policy(
        mapped,
        pool=WAREHOUSE_POOL if uses_warehouse else None,
        backfill_policy=SINGLE_RUN,
    )


def derive_spec(
    spec: dg.AssetSpec, contracts: Mapping[dg.AssetKey, Contract], *, resource_keys: Set[str]
) -> dg.AssetSpec:
    """One spec with group, owners, storage kinds, derived tags, table name and code version
    set; ``resource_keys`` are those of the asset that materialises it."""
    name = DatasetName.from_key(spec.key)
    uses_warehouse = WAREHOUSE_KEY in resource_keys
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
        kinds=spec.kinds | storage_kinds(spec, contracts, resource_keys),
        tags=tags,
        metadata=metadata,
        code_version=code_version,
    )


def storage_kinds(
    spec: dg.AssetSpec, contracts: Mapping[dg.AssetKey, Contract], resource_keys: Set[str]
) -> frozenset[str]:
    """The kinds naming where ``spec``'s data lives, from the declarations that say so: its
    contract's servers; for a quarantine, its dataset's (lake tables aside); else the stores of
    the asset's resources, or an external source's URI scheme."""
    contract = contracts.get(spec.key)
    if contract is not None:
        return server_kinds(contract)
    name = DatasetName.from_key(spec.key)
    if name.name.endswith(QUARANTINE_SUFFIX):
        published = DatasetName(name.domain, name.layer, name.name.removesuffix(QUARANTINE_SUFFIX))
        parent = contracts.get(published.asset_key)
        if parent is not None:
            return server_kinds(parent) - LAKE_TABLE_KINDS
    uri = metadata_value(spec.metadata.get(URI_METADATA_KEY))
    if isinstance(uri, str) and urlsplit(uri).scheme in URI_KINDS:
        return frozenset({URI_KINDS[urlsplit(uri).scheme]})
    return frozenset(RESOURCE_KINDS[key] for key in resource_keys if key in RESOURCE_KINDS)


def server_kinds(contract: Contract) -> frozenset[str]:
    """One kind per server of the contract: the store's (``duckdb``, ``iceberg``) or, for
    files, their format (``parquet``, ``delta``)."""
    kinds: set[str] = set()
    for server in contract.odcs.servers or []:
        server_type = (server.type or "").lower()
        if server_type in SERVER_KINDS:
            kinds.add(SERVER_KINDS[server_type])
        elif server_type in FILE_SERVERS and server.format:
            kinds.add(server.format.lower())
    return frozenset(kinds)


def _content_hash(contract: Contract) -> str:
    """The contract file's content: a changed contract is a changed asset definition."""
    return hashlib.sha256(contract.path.read_bytes()).hexdigest()[:16]
