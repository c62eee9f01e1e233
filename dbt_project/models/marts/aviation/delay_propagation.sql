{{
    config(
        materialized='incremental',
        incremental_strategy='replace_range',
        on_schema_change='fail',
        meta={'partition_column': 'flight_date'},
    )
}}
-- Each aircraft's rotation through New York: every departure of a tail number next to the
-- same aircraft's previous departure. The window runs over all loaded history before the run's
-- days are kept, so a day's rows do not depend on which range produced them.
with

departures as (

    select * from {{ ref('stg_aviation__flights') }}

    where not is_cancelled and tailnum is not null

),

chained as (

    select
        *,
        lag(carrier) over rotation as prev_carrier,
        lag(flight) over rotation as prev_flight,
        lag(dest) over rotation as prev_dest,
        lag(sched_dep_utc) over rotation as prev_sched_dep_utc,
        lag(dep_delay_min) over rotation as prev_dep_delay_min,
        lag(arr_delay_min) over rotation as prev_arr_delay_min,
        row_number() over rotation as rotation_leg

    from departures

    window rotation as (partition by tailnum order by sched_dep_utc, carrier, flight)

),

final as (

    select
        flight_date,
        tailnum,
        carrier,
        flight,
        origin,
        dest,
        sched_dep_utc,
        dep_delay_min,
        arr_delay_min,
        rotation_leg,
        prev_carrier,
        prev_flight,
        prev_dest,
        prev_sched_dep_utc,
        prev_dep_delay_min,
        prev_arr_delay_min,
        datediff('minute', prev_sched_dep_utc, sched_dep_utc) as sched_gap_min,
        -- Propagated: the aircraft's previous departure left at least 15 minutes late, this
        -- one did too, and they were scheduled within 12 hours (one duty day's rotation).
        coalesce(
            prev_dep_delay_min >= 15
            and dep_delay_min >= 15
            and datediff('minute', prev_sched_dep_utc, sched_dep_utc) <= 720,
            false
        ) as is_propagated_delay

    from chained

    where {{ run_date_range('flight_date') }}

)

select * from final
