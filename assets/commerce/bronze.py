"""Commerce bronze: the partner's daily drops, as delivered, one table per file family."""

from assets.commerce.partitions import DAILY
from data_products.lib.bronze import bronze_asset

_DESCRIPTIONS = {
    "orders": "Order lines as delivered in the daily drop (denormalised, re-sent files included).",
    "customers": "New and changed customers as delivered in the daily drop.",
    "products": "The daily product catalog snapshot as delivered.",
    "fx_rates": "The daily currency rates as delivered (units of USD per unit of currency).",
}

orders = bronze_asset(
    "commerce", "orders", partitions_def=DAILY, description=_DESCRIPTIONS["orders"]
)
customers = bronze_asset(
    "commerce", "customers", partitions_def=DAILY, description=_DESCRIPTIONS["customers"]
)
products = bronze_asset(
    "commerce", "products", partitions_def=DAILY, description=_DESCRIPTIONS["products"]
)
fx_rates = bronze_asset(
    "commerce", "fx_rates", partitions_def=DAILY, description=_DESCRIPTIONS["fx_rates"]
)
