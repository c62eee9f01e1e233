-- Departure delay percentiles per origin airport and scheduled local hour, over every loaded
-- day. Percentiles do not add up across days, so this mart is rebuilt whole (a table), never
-- merged per partition. Continuous (interpolated) quantiles over departed flights only.
with

departed as (

    select * from {{ ref('stg_aviation__flights') }}

    where not is_cancelled

),

final as (

    select
        origin,
        sched_dep_hour,
        count(*) as departed_flights,
        min(flight_date) as first_date,
        max(flight_date) as last_date,
        avg(dep_delay_min) as avg_dep_delay_min,
        quantile_cont(dep_delay_min, 0.5) as p50_dep_delay_min,
        quantile_cont(dep_delay_min, 0.9) as p90_dep_delay_min,
        quantile_cont(dep_delay_min, 0.95) as p95_dep_delay_min

    from departed

    group by origin, sched_dep_hour

)

select * from final
