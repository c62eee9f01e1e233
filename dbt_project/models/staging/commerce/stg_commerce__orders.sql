with

source as (

    select * from {{ source('commerce_silver', 'orders') }}

),

renamed as (

    select
        order_id,
        customer_id,
        order_ts,
        order_date,
        status,
        -- The one revenue rule of the domain: cancelled and returned orders earn nothing.
        status in ('placed', 'shipped') as is_revenue,
        currency,
        order_total_usd,
        line_count,
        partition_date

    from source

)

select * from renamed
