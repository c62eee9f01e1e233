-- Products with their latest delivered attributes (type 1), rebuilt from every catalog
-- snapshot on each run. A product that left the catalog keeps its last known attributes.
with

products as (

    select * from {{ ref('stg_commerce__products') }}

),

latest_catalog as (

    select max(partition_date) as latest_catalog_date

    from products

),

latest as (

    select
        *,
        min(partition_date) over (partition by product_id) as first_seen_date,
        max(partition_date) over (partition by product_id) as last_seen_date

    from products

    qualify row_number() over (
        partition by product_id
        order by partition_date desc, source_file desc, source_line desc
    ) = 1

),

known_members as (

    select
        {{ surrogate_key(['latest.product_id']) }} as product_sk,
        latest.product_id,
        latest.product_name,
        latest.category,
        latest.list_price_usd,
        latest.first_seen_date,
        latest.last_seen_date,
        latest.last_seen_date = latest_catalog.latest_catalog_date as is_in_latest_catalog

    from latest

    cross join latest_catalog

),

unknown_member as (

    select
        cast(-1 as bigint) as product_sk,
        'unknown' as product_id,
        cast(null as varchar) as product_name,
        cast(null as varchar) as category,
        cast(null as double) as list_price_usd,
        cast(null as date) as first_seen_date,
        cast(null as date) as last_seen_date,
        false as is_in_latest_catalog

),

final as (

    select * from known_members
    union all
    select * from unknown_member

)

select * from final
