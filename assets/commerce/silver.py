"""Commerce silver: typed, deduplicated, USD-normalised 3NF tables governed by the contracts in
``contracts/commerce``. The parsing lives in ``transforms`` (pure polars, unit-tested); the
splitting, writing and checking is the platform's (``data_products.lib.silver``)."""

import polars as pl

from assets.commerce import transforms
from assets.commerce.partitions import DAILY
from data_products.lib.silver import Stage, silver_asset, silver_assets

BRONZE = "commerce/bronze"
SILVER = "commerce/silver"

fx_rates = silver_asset(
    "commerce.silver.fx_rates",
    inputs={"bronze": f"{BRONZE}/fx_rates"},
    build=transforms.type_fx_rates,
    partitions_def=DAILY,
)

customers = silver_asset(
    "commerce.silver.customers",
    inputs={"bronze": f"{BRONZE}/customers"},
    build=transforms.type_customers,
    partitions_def=DAILY,
)

products = silver_asset(
    "commerce.silver.products",
    inputs={"bronze": f"{BRONZE}/products", "fx": f"{SILVER}/fx_rates"},
    build=transforms.type_products,
    partitions_def=DAILY,
    column_lineage={
        "list_price_usd": [("bronze", "list_price"), ("bronze", "currency"), ("fx", "usd_per_unit")]
    },
)


def _build_orders(typed_order_lines: pl.DataFrame, order_lines: pl.DataFrame) -> pl.DataFrame:
    """Headers come from the delivered lines just typed in this step; an order is published
    only if all its lines were (rule ``orders.lines.complete``), so revenue never counts half an
    order."""
    return transforms.build_orders(typed_order_lines, order_lines)


_PRICE = [("bronze_orders", "unit_price"), ("bronze_orders", "price")]

# Lines and their order headers are one step: the headers are derived from the typed lines, so
# millions of raw lines are read and parsed once, and a header can never disagree with its lines.
orders = silver_assets(
    inputs={"bronze_orders": f"{BRONZE}/orders", "fx": f"{SILVER}/fx_rates"},
    stages=[
        Stage(
            "commerce.silver.order_lines",
            build=transforms.type_order_lines,
            after=[f"{SILVER}/products"],  # order_lines.product_id.known_product queries it
            column_lineage={
                "unit_price_local": _PRICE,
                "unit_price_usd": [*_PRICE, ("bronze_orders", "currency"), ("fx", "usd_per_unit")],
                "line_amount_usd": [
                    ("bronze_orders", "quantity"),
                    *_PRICE,
                    ("bronze_orders", "currency"),
                    ("fx", "usd_per_unit"),
                ],
            },
        ),
        Stage(
            "commerce.silver.orders",
            build=_build_orders,
            after=[f"{SILVER}/customers"],  # orders.customer_id.known_customer queries it
            column_lineage={
                "order_id": [("order_lines", "order_id")],
                "order_total_local": [
                    ("order_lines", "unit_price_local"),
                    ("order_lines", "quantity"),
                ],
                "order_total_usd": [("order_lines", "line_amount_usd")],
                "line_count": [("order_lines", "line_no")],
                "customer_id": [("bronze_orders", "customer_id")],
                "order_ts": [("bronze_orders", "order_ts")],
                "order_date": [("bronze_orders", "order_ts")],
                "status": [("bronze_orders", "status")],
                "currency": [("bronze_orders", "currency")],
            },
        ),
    ],
    partitions_def=DAILY,
)
