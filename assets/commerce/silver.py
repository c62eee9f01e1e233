"""Commerce silver: typed, deduplicated, USD-normalised 3NF tables governed by the contracts in
``contracts/commerce``. The parsing lives in ``transforms`` (pure polars, unit-tested); the
splitting, writing and checking is the platform's (``data_products.lib.products``)."""

import polars as pl

from assets.commerce import transforms
from assets.commerce.partitions import DAILY
from data_products.lib.products import silver_contract_asset

BRONZE = "commerce/bronze"
SILVER = "commerce/silver"

fx_rates = silver_contract_asset(
    "commerce.silver.fx_rates",
    inputs={"bronze": f"{BRONZE}/fx_rates"},
    build=transforms.type_fx_rates,
    partitions_def=DAILY,
)

customers = silver_contract_asset(
    "commerce.silver.customers",
    inputs={"bronze": f"{BRONZE}/customers"},
    build=transforms.type_customers,
    partitions_def=DAILY,
)

products = silver_contract_asset(
    "commerce.silver.products",
    inputs={"bronze": f"{BRONZE}/products", "fx": f"{SILVER}/fx_rates"},
    build=transforms.type_products,
    partitions_def=DAILY,
    column_lineage={
        "list_price_usd": [("bronze", "list_price"), ("bronze", "currency"), ("fx", "usd_per_unit")]
    },
)

order_lines = silver_contract_asset(
    "commerce.silver.order_lines",
    inputs={"bronze_orders": f"{BRONZE}/orders", "fx": f"{SILVER}/fx_rates"},
    build=transforms.type_order_lines,
    partitions_def=DAILY,
    after=[f"{SILVER}/products"],  # order_lines.product_id.known_product queries it
    column_lineage={
        "unit_price_local": [("bronze_orders", "unit_price"), ("bronze_orders", "price")],
        "unit_price_usd": [
            ("bronze_orders", "unit_price"),
            ("bronze_orders", "price"),
            ("bronze_orders", "currency"),
            ("fx", "usd_per_unit"),
        ],
        "line_amount_usd": [
            ("bronze_orders", "quantity"),
            ("bronze_orders", "unit_price"),
            ("bronze_orders", "price"),
            ("bronze_orders", "currency"),
            ("fx", "usd_per_unit"),
        ],
    },
)


def _build_orders(
    bronze_orders: pl.DataFrame, fx: pl.DataFrame, order_lines: pl.DataFrame
) -> pl.DataFrame:
    """Headers are derived from the delivered lines; an order is published only if all its
    lines were (rule ``orders.lines.complete``), so revenue never counts half an order."""
    return transforms.build_orders(transforms.type_order_lines(bronze_orders, fx), order_lines)


orders = silver_contract_asset(
    "commerce.silver.orders",
    inputs={
        "bronze_orders": f"{BRONZE}/orders",
        "fx": f"{SILVER}/fx_rates",
        "order_lines": f"{SILVER}/order_lines",
    },
    build=_build_orders,
    partitions_def=DAILY,
    after=[f"{SILVER}/customers"],  # orders.customer_id.known_customer queries it
    column_lineage={
        "order_total_local": [("order_lines", "unit_price_local"), ("order_lines", "quantity")],
        "order_total_usd": [("order_lines", "line_amount_usd")],
        "line_count": [("order_lines", "line_no")],
        "order_date": [("bronze_orders", "order_ts")],
    },
)
