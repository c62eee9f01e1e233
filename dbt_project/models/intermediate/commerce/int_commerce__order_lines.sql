-- One row per order line of a published order, with its header's customer, time and status.
-- Shared by fct_orders and the per-product marts; silver publishes a line only with its header
-- (rule orders.lines.complete), so the inner join drops nothing that silver published.
with

orders as (

    select * from {{ ref('stg_commerce__orders') }}

),

order_lines as (

    select * from {{ ref('stg_commerce__order_lines') }}

),

joined as (

    select
        order_lines.order_id,
        order_lines.line_no,
        orders.customer_id,
        orders.order_ts,
        orders.order_date,
        orders.partition_date,
        orders.status,
        orders.is_revenue,
        orders.currency,
        order_lines.product_id,
        order_lines.quantity,
        order_lines.unit_price_local,
        order_lines.unit_price_usd,
        order_lines.line_amount_usd

    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id

)

select * from joined
