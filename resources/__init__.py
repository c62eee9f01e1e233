"""Configurable resources shared by every domain's assets."""

from __future__ import annotations

from typing import Any

import dagster as dg

from resources.lake import LakeResource
from resources.postgres import PostgresResource, postgres_resource
from resources.warehouse import WarehouseResource

__all__ = ["LakeResource", "PostgresResource", "WarehouseResource", "default_resources"]


def default_resources() -> dict[str, dg.ConfigurableResource[Any]]:
    """The embedded profile: every field empty, so locations derive from the data home when used.

    ``data_products/definitions.py`` binds these under the names the asset factories ask for.
    """
    from data_products.lib.dbt import dbt_resource  # dbt import is slow: only when building defs

    return {
        "warehouse": WarehouseResource(),
        "lake": LakeResource(),
        "dbt": dbt_resource(),
        "postgres": postgres_resource(),
    }
