-- Recency, frequency and monetary scores per customer as of the latest order date loaded,
-- over revenue orders (placed, shipped) of all history. Rebuilt on each run.
with

orders as (

    select * from {{ ref('stg_commerce__orders') }}

),

as_of as (

    select max(order_date) as as_of_date

    from orders

),

customers as (

    select
        customer_id,
        max(order_date) as last_order_date,
        count(*) as frequency,
        round(sum(order_total_usd), 2) as monetary_usd

    from orders

    where is_revenue

    group by customer_id

),

measured as (

    select
        customers.*,
        as_of.as_of_date,
        date_diff('day', customers.last_order_date, as_of.as_of_date) as recency_days

    from customers

    cross join as_of

),

-- Quintile scores 1 (worst) to 5 (best) from the rank among all customers:
-- 1 + floor(5 * (rank - 1) / n), in integer arithmetic. Equal values share a rank and so a
-- score; no tie-break by customer_id is needed for determinism.
scored as (

    select
        *,
        cast(1 + (5 * (rank() over (order by recency_days desc) - 1)) // count(*) over ()
            as integer) as recency_score,
        cast(1 + (5 * (rank() over (order by frequency asc) - 1)) // count(*) over ()
            as integer) as frequency_score,
        cast(1 + (5 * (rank() over (order by monetary_usd asc) - 1)) // count(*) over ()
            as integer) as monetary_score

    from measured

),

final as (

    select
        customer_id,
        as_of_date,
        last_order_date,
        recency_days,
        frequency,
        monetary_usd,
        recency_score,
        frequency_score,
        monetary_score,
        cast(recency_score as varchar)
        || cast(frequency_score as varchar)
        || cast(monetary_score as varchar) as rfm_code,
        -- The classic recency x frequency grid; the first matching rule wins.
        case
            when recency_score >= 4 and frequency_score >= 4 then 'champions'
            when recency_score >= 3 and frequency_score >= 3 then 'loyal'
            when recency_score >= 4 then 'new_customers'
            when recency_score <= 2 and frequency_score >= 3 then 'at_risk'
            when recency_score <= 2 then 'hibernating'
            else 'needs_attention'
        end as segment

    from scored

)

select * from final
