-- Shopping sessions: a customer's orders grouped until 30 minutes pass without an order.
-- Rebuilt over all history (not incremental): a session can cross midnight and so span two
-- delivery days, and session numbers count from the customer's first order.
with

orders as (

    select * from {{ ref('stg_commerce__orders') }}

),

with_gaps as (

    select
        order_id,
        customer_id,
        order_ts,
        is_revenue,
        order_total_usd,
        lag(order_ts) over (
            partition by customer_id order by order_ts, order_id
        ) as previous_order_ts

    from orders

),

numbered as (

    select
        *,
        sum(case
            when previous_order_ts is null then 1
            when order_ts - previous_order_ts > interval 30 minutes then 1
            else 0
        end) over (
            partition by customer_id
            order by order_ts, order_id
            rows between unbounded preceding and current row
        ) as session_number

    from with_gaps

),

sessions as (

    select
        customer_id,
        cast(session_number as integer) as session_number,
        min(order_ts) as session_start,
        max(order_ts) as session_end,
        count(*) as orders,
        round(coalesce(sum(order_total_usd) filter (where is_revenue), 0), 2) as revenue_usd

    from numbered

    group by customer_id, session_number

),

final as (

    select
        customer_id || '-' || cast(session_number as varchar) as session_id,
        customer_id,
        session_number,
        session_start,
        session_end,
        cast(session_start as date) as session_date,
        date_diff('second', session_start, session_end) / 60.0 as duration_minutes,
        orders,
        revenue_usd

    from sessions

)

select * from final
