with

source as (

    select * from {{ source('commerce_silver', 'order_lines') }}

),

renamed as (

    select
        order_id,
        line_no,
        product_id,
        quantity,
        unit_price_local,
        unit_price_usd,
        line_amount_usd,
        partition_date

    from source

)

select * from renamed
