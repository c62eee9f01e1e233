"""Changing the pool, the backfill policy and the compute function of an existing
``AssetsDefinition``.

Why: platform policy (``data_products.lib.policy``) sets the warehouse pool and
``BackfillPolicy.single_run()`` on every asset, and ``data_products.lib.retries`` wraps every
asset's compute function, however the asset was built (our factories, dagster-dbt, hand-written
``@asset``), so domains never declare them. Dagster's public mapping,
``AssetsDefinition.map_asset_specs``, covers spec fields only; the pool and the compute function
live on the op and the backfill policy on the ``AssetsDefinition``, and no public API replaces
any of them after the fact. This module rebuilds the op with the new pool or compute function
(the fields ``OpDefinition.with_replaced_properties`` copies, plus ``pool``) and the definition
with ``AssetsDefinition.dagster_internal_init`` (what ``with_attributes`` and ``subset_for`` use
internally). The compute function of a decorated op is a ``DecoratedOpFunction`` (a named tuple
around the user's function, ``decorated_fn``); Dagster reads the context, config and resource
parameters from that function's signature, so a wrapper must keep it (``functools.wraps``).

Written against dagster 1.13.27; ``tests/lib/test_policy.py`` and ``tests/lib/test_retries.py``
pin the internal signatures and the behaviour (the op runs in the pool, a range runs as one run,
a wrapped generator stays a generator, resources and config still reach the function), so an
upgrade that changes them fails there first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.definitions.decorators.op_decorator import DecoratedOpFunction
from dagster._core.definitions.op_definition import OpDefinition

PINNED_DAGSTER = "1.13.27"

ComputeWrapper = Callable[[Callable[..., Any]], Callable[..., Any]]
"""Takes the user's compute function, returns one with the same signature."""

WRAPPED_MARK = "__data_products_wrapped__"
"""Set on a wrapped function, so applying the policy twice wraps once."""


def _rebuilt_op(
    node: OpDefinition, *, pool: str | None, compute_fn: DecoratedOpFunction | Any
) -> OpDefinition:
    return OpDefinition.dagster_internal_init(
        compute_fn=compute_fn,
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
        pool=pool,
    )


def _with_node(assets_def: dg.AssetsDefinition, **changes: Any) -> dg.AssetsDefinition:
    return assets_def.__class__.dagster_internal_init(
        **{**assets_def.get_attributes_dict(), **changes}
    )


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
        node = _rebuilt_op(node, pool=new_pool, compute_fn=node.compute_fn)
    return _with_node(assets_def, node_def=node, backfill_policy=new_policy)


def with_wrapped_compute(
    assets_def: dg.AssetsDefinition, wrap: ComputeWrapper
) -> dg.AssetsDefinition:
    """``assets_def`` whose op calls ``wrap(fn)`` instead of its decorated function ``fn``.

    Unchanged: definitions without a computation, graph-backed assets (their ops are not ours to
    wrap one by one), ops built without a decorator, and an op wrapped before."""
    node = assets_def.node_def if assets_def.is_executable else None
    if not isinstance(node, OpDefinition):
        return assets_def
    compute_fn = node.compute_fn
    if not isinstance(compute_fn, DecoratedOpFunction):
        return assets_def
    if getattr(compute_fn.decorated_fn, WRAPPED_MARK, False):
        return assets_def
    wrapped = wrap(compute_fn.decorated_fn)
    setattr(wrapped, WRAPPED_MARK, True)
    op = _rebuilt_op(node, pool=node.pool, compute_fn=DecoratedOpFunction(decorated_fn=wrapped))
    return _with_node(assets_def, node_def=op)
