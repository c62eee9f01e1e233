-- Cohort retention: customers grouped by the month of their first order, and how many of them
-- ordered again in each later month. Rebuilt over all history on each run.
with

orders as (

    select * from {{ ref('stg_commerce__orders') }}

),

active_months as (

    select distinct
        customer_id,
        cast(date_trunc('month', order_date) as date) as activity_month

    from orders

),

cohorts as (

    select
        customer_id,
        min(activity_month) as cohort_month

    from active_months

    group by customer_id

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_size

    from cohorts

    group by cohort_month

),

last_loaded as (

    select max(activity_month) as last_month

    from active_months

),

-- Every cohort gets a row for each month up to the last month loaded, including months in
-- which nobody came back.
cohort_months as (

    select
        cohort_sizes.cohort_month,
        cohort_sizes.cohort_size,
        cast(unnest(range(
            0, date_diff('month', cohort_sizes.cohort_month, last_loaded.last_month) + 1
        )) as integer) as month_offset

    from cohort_sizes

    cross join last_loaded

),

retained as (

    select
        cohorts.cohort_month,
        cast(date_diff('month', cohorts.cohort_month, active_months.activity_month) as integer)
            as month_offset,
        count(*) as retained_customers

    from active_months

    inner join cohorts
        on active_months.customer_id = cohorts.customer_id

    group by all

),

final as (

    select
        cohort_months.cohort_month,
        cohort_months.month_offset,
        cast(cohort_months.cohort_month + to_months(cohort_months.month_offset) as date)
            as activity_month,
        cohort_months.cohort_size,
        coalesce(retained.retained_customers, 0) as retained_customers,
        cohort_months.cohort_size - coalesce(retained.retained_customers, 0) as churned_customers,
        coalesce(retained.retained_customers, 0) / cohort_months.cohort_size as retention_rate,
        1 - coalesce(retained.retained_customers, 0) / cohort_months.cohort_size as churn_rate

    from cohort_months

    left join retained
        on cohort_months.cohort_month = retained.cohort_month
        and cohort_months.month_offset = retained.month_offset

)

select * from final
