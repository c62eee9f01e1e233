-- One row per calendar day from the first to the last order date loaded in silver, with no
-- gaps, so day-level marts can show days without orders and windows count calendar days.
with

orders as (

    select * from {{ ref('stg_commerce__orders') }}

),

bounds as (

    select
        min(order_date) as first_day,
        max(order_date) as last_day

    from orders

),

spine as (

    select cast(unnest(generate_series(
        cast(first_day as timestamp), cast(last_day as timestamp), interval 1 day
    )) as date) as date_day

    from bounds

    where first_day is not null

),

final as (

    select
        {{ date_key('date_day') }} as date_key,
        date_day,
        cast(year(date_day) as integer) as year,
        cast(quarter(date_day) as integer) as quarter,
        cast(month(date_day) as integer) as month,
        monthname(date_day) as month_name,
        cast(date_trunc('month', date_day) as date) as month_start,
        cast(day(date_day) as integer) as day_of_month,
        cast(isodow(date_day) as integer) as iso_day_of_week,
        dayname(date_day) as day_name,
        cast(weekofyear(date_day) as integer) as iso_week,
        isodow(date_day) >= 6 as is_weekend

    from spine

)

select * from final
