with

signed as (
    select * from {{ source('dq', 'acceptance_signed') }}
),

renamed as (
    select
        month as period_month,
        version as signature_version,
        signed_at,
        org_code,
        org_name,
        kind as org_kind,
        peer_group,
        county_code,
        days_judged,
        days_at_bar,
        share as days_at_bar_pct,
        passed = 1 as is_accepted,
        blocking_failures
    from signed
)

select * from renamed
