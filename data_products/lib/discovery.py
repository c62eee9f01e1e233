"""Discovery and cross-cutting policy: the code location is whatever the top-level packages
define, with platform policy (derived spec fields from ``data_products.lib.policy``, lineage on
every asset, contract SLAs, shared resources, the executor) applied once here instead of in every
domain."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import dagster as dg

from data_products.lib.contracts import Contract, discover_contracts
from data_products.lib.lineage import with_lineage
from data_products.lib.policy import apply_spec_policy
from data_products.lib.retries import with_transient_retries


def discover(*packages: ModuleType) -> dg.Definitions:
    """Every Dagster object defined at module scope anywhere under the given packages."""
    return dg.Definitions.merge(*(dg.load_definitions_from_package_module(p) for p in packages))


def apply_platform_policy(
    found: dg.Definitions,
    *,
    resources: Mapping[str, Any],
    executor: dg.ExecutorDefinition = dg.in_process_executor,
) -> dg.Definitions:
    """Derive every spec field policy owns, attach lineage hooks and contract SLAs to every
    asset, bind resources and the executor.

    The in-process executor is the embedded default: on a laptop it is ~4x faster than spawning a
    process per step (a ten-asset chain: about 2 s in process, about 40 s with the default
    multiprocess executor from the CLI); production swaps it by configuration.
    """
    contracts = discover_contracts()
    assets = [
        _with_policy(a, contracts) if isinstance(a, dg.AssetsDefinition | dg.AssetSpec) else a
        for a in (found.assets or [])
    ]
    checks = [with_lineage(c) for c in (found.asset_checks or [])]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=found.jobs,
        schedules=found.schedules,
        sensors=found.sensors,
        resources={**(found.resources or {}), **resources},
        executor=executor,
    )


def _with_policy(
    assets_def: dg.AssetsDefinition | dg.AssetSpec, contracts: Mapping[dg.AssetKey, Contract]
) -> dg.AssetsDefinition | dg.AssetSpec:
    derived = apply_spec_policy(assets_def, contracts)
    if isinstance(derived, dg.AssetSpec) or not derived.is_executable:
        return derived
    return with_lineage(_with_contract_sla(with_transient_retries(derived), contracts))


def _with_contract_sla(
    assets_def: dg.AssetsDefinition, contracts: Mapping[dg.AssetKey, Contract]
) -> dg.AssetsDefinition:
    """A contract's freshness SLA becomes its asset's ``FreshnessPolicy`` whoever built the asset
    (our factories, dbt), so the SLA is declared once, in the contract."""

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        contract = contracts.get(spec.key)
        policy = contract.freshness_policy() if contract else None
        if policy is None or spec.freshness_policy is not None:
            return spec
        return spec.replace_attributes(freshness_policy=policy)

    if not any(key in contracts and contracts[key].freshness_policy() for key in assets_def.keys):
        return assets_def
    return assets_def.map_asset_specs(apply)
