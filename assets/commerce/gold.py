"""The commerce gold layer: the dbt star schema and marts of ``dbt_project/models/marts/commerce``,
as one multi-asset on the domain's daily partitions (one ``dbt build`` per run or range)."""

from assets.commerce.partitions import DAILY
from data_products.lib.dbt import domain_dbt_assets

commerce_gold_dbt_assets = domain_dbt_assets("commerce", DAILY)
