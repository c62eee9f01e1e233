{{
    config(
        materialized='incremental',
        incremental_strategy='replace_range',
        on_schema_change='fail',
        meta={'partition_column': 'date_day'},
    )
}}
-- Revenue per calendar day. Running total and moving average are computed over all silver
-- history before the run's days are kept, so a day's numbers do not depend on which range
-- (or in what order) the gold partitions were run.
with

orders as (

    select * from {{ ref('stg_commerce__orders') }}

),

calendar as (

    select * from {{ ref('dim_date') }}

),

orders_per_day as (

    select
        order_date,
        count(*) as orders,
        count(*) filter (where is_revenue) as revenue_orders,
        round(coalesce(sum(order_total_usd) filter (where is_revenue), 0), 2) as revenue_usd

    from orders

    group by order_date

),

every_day as (

    select
        calendar.date_day,
        calendar.date_key,
        coalesce(orders_per_day.orders, 0) as orders,
        coalesce(orders_per_day.revenue_orders, 0) as revenue_orders,
        coalesce(orders_per_day.revenue_usd, 0) as revenue_usd

    from calendar

    left join orders_per_day
        on calendar.date_day = orders_per_day.order_date

),

windowed as (

    select
        *,
        round(sum(revenue_usd) over (
            order by date_day rows between unbounded preceding and current row
        ), 2) as cumulative_revenue_usd,
        -- Rows are consecutive calendar days (dim_date has no gaps), so 7 rows = 7 days;
        -- the first six days average over the days that exist.
        avg(revenue_usd) over (
            order by date_day rows between 6 preceding and current row
        ) as revenue_7d_avg_usd

    from every_day

),

final as (

    select * from windowed

    where {{ run_date_range('date_day') }}

)

select * from final
