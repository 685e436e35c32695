with

acceptance as (
    select * from {{ source('dq', 'current_acceptance') }}
),

renamed as (
    select
        org_code,
        month as period_month,
        peer_group,
        days_judged,
        days_at_bar,
        share as days_at_bar_pct,
        passed = 1 as is_accepted,
        blocking_failures,
        computed_at as accepted_at
    from acceptance
)

select * from renamed
