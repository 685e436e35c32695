with

source as (
    select * from {{ source('reference', 'organization') }}
),

renamed as (
    select
        org_code,
        org_name,
        kind as org_kind,
        level as org_level,
        peer_group,
        county_code,
        county_name,
        active_from as active_from_date,
        active_to as active_to_date
    from source
)

select * from renamed
