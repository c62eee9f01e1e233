{{
    config(
        materialized='incremental',
        incremental_strategy='replace_range',
        on_schema_change='fail',
        meta={'partition_column': 'flight_date'},
    )
}}
-- On-time performance per day, carrier and route. Cancelled flights count as scheduled but
-- never as on time or late; diverted flights have no arrival delay and are left out of the rate.
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
        dest,
        count(*) as scheduled_flights,
        count(*) filter (where is_cancelled) as cancelled_flights,
        count(*) filter (where is_diverted) as diverted_flights,
        count(arr_delay_min) as arrived_flights,
        count(*) filter (where is_on_time) as on_time_arrivals,
        count(*) filter (where is_on_time) / nullif(count(arr_delay_min), 0) as on_time_rate,
        avg(dep_delay_min) as avg_dep_delay_min,
        avg(arr_delay_min) as avg_arr_delay_min

    from flights

    group by flight_date, carrier, origin, dest

)

select * from final
