with

source as (

    select * from {{ source('aviation_silver', 'weather') }}

),

renamed as (

    select
        origin,
        time_hour,
        visib_mi,
        wind_speed_mph,
        precip_in

    from source

)

select * from renamed
