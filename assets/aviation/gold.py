"""The aviation gold layer: the dbt marts of ``dbt_project/models/marts/aviation`` as one
multi-asset on the departure-day partitions (one ``dbt build`` per run or range)."""

from assets.aviation.partitions import DAILY
from data_products.lib.dbt import domain_dbt_assets

aviation_gold_dbt_assets = domain_dbt_assets("aviation", DAILY)
