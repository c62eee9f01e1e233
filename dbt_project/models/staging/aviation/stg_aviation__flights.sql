with

source as (

    select * from {{ source('aviation_silver', 'flights') }}

),

renamed as (

    select
        flight_date,
        carrier,
        flight,
        origin,
        dest,
        tailnum,
        sched_dep_utc,
        sched_dep_hour,
        dep_utc,
        sched_arr_utc,
        arr_utc,
        time_hour,
        dep_delay_min,
        arr_delay_min,
        is_cancelled,
        is_diverted,
        -- The US DOT definition: a flight is on time when it arrives less than 15 minutes late.
        arr_delay_min < 15 as is_on_time

    from source

)

select * from renamed
