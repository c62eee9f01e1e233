{{
    config(
        materialized='incremental',
        incremental_strategy='replace_range',
        on_schema_change='fail',
        meta={'partition_column': 'flight_date'},
    )
}}
-- Cancellations per day, carrier and origin airport.
with

flights as (

    select * from {{ ref('stg_aviation__flights') }}

    where {{ run_date_range('flight_date') }}

),

final as (

    select
        flight_date,
        carrier,
        origin,
        count(*) as scheduled_flights,
        count(*) filter (where is_cancelled) as cancelled_flights,
        count(*) filter (where is_cancelled) / count(*) as cancellation_rate

    from flights

    group by flight_date, carrier, origin

)

select * from final
