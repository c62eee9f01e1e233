"""Changing the pool and the backfill policy of an existing ``AssetsDefinition``.

Why: platform policy (``data_products.lib.policy``) sets the warehouse pool and
``BackfillPolicy.single_run()`` on every asset, however it was built (our factories, dagster-dbt,
hand-written ``@asset``), so domains never declare them. Dagster's public mapping,
``AssetsDefinition.map_asset_specs``, covers spec fields only; the pool lives on the op and the
backfill policy on the ``AssetsDefinition``, and no public API replaces either after the fact.
This module rebuilds the op with the pool (the fields ``OpDefinition.with_replaced_properties``
copies, plus ``pool``) and the definition with ``AssetsDefinition.dagster_internal_init`` (what
``with_attributes`` and ``subset_for`` use internally).

Written against dagster 1.13.27; ``tests/lib/test_policy.py`` pins the internal signatures and
the behaviour (the op runs in the pool, a range runs as one run), so an upgrade that changes them
fails there first.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.op_definition import OpDefinition

PINNED_DAGSTER = "1.13.27"


def with_pool_and_backfill_policy(
    assets_def: dg.AssetsDefinition,
    *,
    pool: str | None,
    backfill_policy: dg.BackfillPolicy | None,
) -> dg.AssetsDefinition:
    """``assets_def`` whose op runs in ``pool`` and whose backfills follow ``backfill_policy``
    (``None`` keeps what it has). Graph-backed assets keep their ops' pools."""
    node = assets_def.node_def
    new_pool = pool if pool is not None else getattr(node, "pool", None)
    new_policy = backfill_policy if backfill_policy is not None else assets_def.backfill_policy
    if new_policy == assets_def.backfill_policy and new_pool == getattr(node, "pool", None):
        return assets_def
    if isinstance(node, OpDefinition) and node.pool != new_pool:
        node = OpDefinition.dagster_internal_init(
            compute_fn=node.compute_fn,
            name=node.name,
            ins={d.name: dg.In.from_definition(d) for d in node.input_defs},
            outs={d.name: dg.Out.from_definition(d) for d in node.output_defs},
            description=node.description,
            config_schema=node.config_schema,
            required_resource_keys=node.required_resource_keys,
            tags=node.tags,
            version=None,
            retry_policy=node.retry_policy,
            code_version=node._version,  # the op-level code version (`version` is deprecated)
            pool=new_pool,
        )
    return assets_def.__class__.dagster_internal_init(
        **{**assets_def.get_attributes_dict(), "node_def": node, "backfill_policy": new_policy}
    )
