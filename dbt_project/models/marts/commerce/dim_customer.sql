-- SCD2 history of customers, rebuilt from every silver delivery on each run. Not a dbt snapshot:
-- a snapshot's history depends on when and how often it ran; this one depends only on the data,
-- so rebuilding it is idempotent and a backfill in any order gives the same table.
with

customers as (

    select * from {{ ref('stg_commerce__customers') }}

),

-- One record per customer and change time: the same change delivered twice (a re-sent file,
-- a later day repeating it) counts once, the latest delivered copy wins. A change without
-- updated_at is dated by its delivery day.
changes as (

    select
        customer_id,
        email,
        country,
        segment,
        signup_date,
        coalesce(updated_at, cast(partition_date as timestamp)) as changed_at

    from customers

    qualify row_number() over (
        partition by customer_id, coalesce(updated_at, cast(partition_date as timestamp))
        order by partition_date desc, source_file desc, source_line desc
    ) = 1

),

-- A new version starts where a tracked attribute (email, country, segment) differs from the
-- customer's previous change; re-deliveries that change nothing tracked are absorbed.
flagged as (

    select
        *,
        lag(customer_id) over by_change is null
        or email is distinct from lag(email) over by_change
        or country is distinct from lag(country) over by_change
        or segment is distinct from lag(segment) over by_change
        as starts_version

    from changes

    window by_change as (partition by customer_id order by changed_at)

),

versions as (

    select
        customer_id,
        email,
        country,
        segment,
        changed_at,
        row_number() over by_version as version_number,
        lead(changed_at) over by_version as next_version_at

    from flagged

    where starts_version

    window by_version as (partition by customer_id order by changed_at)

),

-- signup_date is not tracked (type 1): every version shows the latest delivered value.
latest_signup as (

    select
        customer_id,
        signup_date

    from changes

    qualify row_number() over (partition by customer_id order by changed_at desc) = 1

),

known_members as (

    select
        {{ surrogate_key(['versions.customer_id', 'versions.changed_at']) }} as customer_sk,
        versions.customer_id,
        versions.email,
        versions.country,
        versions.segment,
        latest_signup.signup_date,
        cast(versions.version_number as integer) as version_number,
        versions.changed_at,
        -- The first version is open towards the past, so an order placed before the
        -- customer's first delivery still finds the earliest known attributes
        -- (late-arriving dimension) instead of the unknown member.
        case
            when versions.version_number = 1 then {{ scd2_beginning_of_time() }}
            else versions.changed_at
        end as valid_from,
        coalesce(versions.next_version_at, {{ scd2_end_of_time() }}) as valid_to,
        versions.next_version_at is null as is_current

    from versions

    inner join latest_signup
        on versions.customer_id = latest_signup.customer_id

),

unknown_member as (

    select
        cast(-1 as bigint) as customer_sk,
        'unknown' as customer_id,
        cast(null as varchar) as email,
        cast(null as varchar) as country,
        cast(null as varchar) as segment,
        cast(null as date) as signup_date,
        0 as version_number,
        cast(null as timestamp) as changed_at,
        {{ scd2_beginning_of_time() }} as valid_from,
        {{ scd2_end_of_time() }} as valid_to,
        true as is_current

),

final as (

    select * from known_members
    union all
    select * from unknown_member

)

select * from final
