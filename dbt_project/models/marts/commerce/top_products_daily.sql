{{
    config(
        materialized='incremental',
        incremental_strategy='replace_range',
        on_schema_change='fail',
        meta={'partition_column': 'date_day'},
    )
}}
-- The five products with the highest revenue on each day. Keys only (product_sk, product_id):
-- names live in dim_product, so a catalog rename never leaves old days stale.
with

order_lines as (

    select * from {{ ref('int_commerce__order_lines') }}

    where is_revenue and {{ run_date_range('order_date') }}

),

products as (

    select * from {{ ref('dim_product') }}

    where product_sk <> -1

),

product_days as (

    select
        order_date as date_day,
        product_id,
        round(sum(line_amount_usd), 2) as revenue_usd,
        cast(sum(quantity) as bigint) as units_sold,
        count(distinct order_id) as orders

    from order_lines

    group by order_date, product_id

),

ranked as (

    select
        *,
        -- Equal revenue (to the cent) ranks by product_id, so the top five never depend on
        -- row order.
        row_number() over (
            partition by date_day order by revenue_usd desc, product_id asc
        ) as product_rank

    from product_days

    qualify product_rank <= 5

),

final as (

    select
        ranked.date_day,
        {{ date_key('ranked.date_day') }} as date_key,
        cast(ranked.product_rank as integer) as product_rank,
        coalesce(products.product_sk, -1) as product_sk,
        ranked.product_id,
        ranked.revenue_usd,
        ranked.units_sold,
        ranked.orders

    from ranked

    left join products
        on ranked.product_id = products.product_id

)

select * from final
