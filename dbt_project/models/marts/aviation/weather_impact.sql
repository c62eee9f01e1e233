-- Departure delay and cancellations against the weather at the origin in the scheduled
-- departure hour (flights join weather on origin and UTC hour). One row per weather factor
-- and bucket, over every loaded day; rebuilt whole, like every mart of non-additive measures.
with

flights as (

    select * from {{ ref('stg_aviation__flights') }}

),

weather as (

    select * from {{ ref('stg_aviation__weather') }}

),

observed as (

    select
        flights.is_cancelled,
        flights.dep_delay_min,
        weather.origin is not null as has_weather,
        weather.visib_mi,
        weather.wind_speed_mph,
        weather.precip_in

    from flights

    left join weather
        on flights.origin = weather.origin
        and flights.time_hour = weather.time_hour

),

bucketed as (

    select
        *,
        case
            when not has_weather or visib_mi is null then 'no observation'
            when visib_mi < 1 then '< 1 mi'
            when visib_mi < 3 then '1-3 mi'
            when visib_mi < 5 then '3-5 mi'
            when visib_mi < 10 then '5-10 mi'
            else '10 mi'
        end as visibility,
        case
            when not has_weather or wind_speed_mph is null then 'no observation'
            when wind_speed_mph < 5 then '< 5 mph'
            when wind_speed_mph < 10 then '5-10 mph'
            when wind_speed_mph < 20 then '10-20 mph'
            when wind_speed_mph < 30 then '20-30 mph'
            else '>= 30 mph'
        end as wind,
        case
            when not has_weather or precip_in is null then 'no observation'
            when precip_in = 0 then 'none'
            when precip_in < 0.1 then '< 0.1 in'
            else '>= 0.1 in'
        end as precipitation

    from observed

),

by_factor as (

    select 'visibility' as factor, visibility as bucket, * from bucketed
    union all
    select 'wind' as factor, wind as bucket, * from bucketed
    union all
    select 'precipitation' as factor, precipitation as bucket, * from bucketed

),

final as (

    select
        factor,
        bucket,
        count(*) as scheduled_flights,
        count(*) filter (where is_cancelled) as cancelled_flights,
        count(*) filter (where is_cancelled) / count(*) as cancellation_rate,
        count(dep_delay_min) as departed_flights,
        avg(dep_delay_min) as avg_dep_delay_min,
        quantile_cont(dep_delay_min, 0.9) as p90_dep_delay_min,
        count(*) filter (where dep_delay_min >= 15) / nullif(count(dep_delay_min), 0)
            as delayed_15_rate

    from by_factor

    group by factor, bucket

)

select * from final
