{{ config(order_by='(business_date, org_code)') }}

with

scores as (
    select * from {{ ref('stg_dq__org_day_score') }}
),

organizations as (
    select * from {{ ref('dim_organization') }}
),

final as (
    select
        scores.business_date as business_date,
        scores.org_code as org_code,
        organizations.org_name as org_name,
        organizations.org_kind as org_kind,
        scores.peer_group as peer_group,
        organizations.county_code as county_code,
        organizations.county_name as county_name,
        scores.completeness_score as completeness_score,
        scores.timeliness_score as timeliness_score,
        scores.correctness_score as correctness_score,
        scores.logic_score as logic_score,
        scores.composite_score as composite_score,
        scores.peer_rank as peer_rank,
        scores.peer_size as peer_size,
        scores.rank_change_day as rank_change_day,
        scores.rank_change_month as rank_change_month,
        scores.rules_failed as rules_failed,
        scores.blocking_rules_failed as blocking_rules_failed,
        scores.rules_error as rules_error,
        scores.rules_waived as rules_waived,
        scores.new_failures as new_failures,
        scores.resolved_failures as resolved_failures,
        scores.persisting_failures as persisting_failures,
        scores.dq_run_id as dq_run_id
    from scores
    left join organizations
        on scores.org_code = organizations.org_code
)

select * from final
