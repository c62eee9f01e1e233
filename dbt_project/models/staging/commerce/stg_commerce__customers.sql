with

source as (

    select * from {{ source('commerce_silver', 'customers') }}

),

renamed as (

    select
        customer_id,
        email,
        country,
        segment,
        signup_date,
        updated_at,
        partition_date,
        _source_file as source_file,
        _source_line as source_line

    from source

)

select * from renamed
