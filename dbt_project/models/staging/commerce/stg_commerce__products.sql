with

source as (

    select * from {{ source('commerce_silver', 'products') }}

),

renamed as (

    select
        product_id,
        product_name,
        category,
        list_price_usd,
        partition_date,
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
