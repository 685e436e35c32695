{{ config(order_by='(org_code)') }}

with

organizations as (
    select * from {{ ref('stg_reference__organization') }}
),

counties as (
    select
        org_code as county_code,
        org_name as county_platform_name
    from organizations
    where org_kind = 'county'
),

final as (
    select
        organizations.org_code as org_code,
        organizations.org_name as org_name,
        organizations.org_kind as org_kind,
        organizations.org_level as org_level,
        organizations.peer_group as peer_group,
        organizations.county_code as county_code,
        coalesce(nullIf(organizations.county_name, ''), counties.county_platform_name)
            as county_name,
        counties.county_platform_name as county_platform_name,
        organizations.active_from_date as active_from_date,
        organizations.active_to_date as active_to_date
    from organizations
    left join counties
        on organizations.county_code = counties.county_code
)

select * from final
