"""Building the CDC pipeline from the resources, shared by the assets, the sensor and the demo."""

from __future__ import annotations

from assets.cdc.oltp import TABLES
from data_products.lib.cdc.pipeline import CdcPipeline
from data_products.lib.settings import get_settings
from resources.lake import LakeResource
from resources.postgres import PostgresResource


def build_pipeline(postgres: PostgresResource, lake: LakeResource) -> CdcPipeline:
    """The slot's pipeline; its schema state lives next to the lake, one file per slot."""
    return CdcPipeline(
        postgres.source(TABLES),
        lake.catalog(),
        lake.resolved_delta_root(),
        get_settings().home / "cdc" / postgres.slot / "state.json",
        storage_options=lake.delta_storage_options(),
    )
