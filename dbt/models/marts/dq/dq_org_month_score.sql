{#- Monthly scores: the mean of the organisation's daily scores (days with a score), the
    month's peer-group rank by that mean (standard competition ranking on the mean rounded
    to 2 decimals) and the month's acceptance. -#}
{{ config(order_by='(period_month, org_code)') }}

with

days as (
    select
        org_code,
        org_name,
        peer_group,
        county_code,
        business_date,
        completeness_score as day_completeness_score,
        timeliness_score as day_timeliness_score,
        correctness_score as day_correctness_score,
        logic_score as day_logic_score,
        composite_score as day_composite_score,
        rules_failed as day_rules_failed,
        blocking_rules_failed as day_blocking_rules_failed,
        new_failures as day_new_failures,
        resolved_failures as day_resolved_failures
    from {{ ref('dq_org_day_score') }}
),

monthly as (
    select
        org_code,
        any(org_name) as org_name,
        peer_group,
        any(county_code) as county_code,
        toStartOfMonth(business_date) as period_month,
        count() as days_scored,
        round(avg(day_completeness_score), 2) as completeness_score,
        round(avg(day_timeliness_score), 2) as timeliness_score,
        round(avg(day_correctness_score), 2) as correctness_score,
        round(avg(day_logic_score), 2) as logic_score,
        round(avg(day_composite_score), 2) as composite_score,
        round(min(day_composite_score), 2) as worst_day_composite_score,
        sum(day_rules_failed) as rules_failed,
        sum(day_blocking_rules_failed) as blocking_rules_failed,
        sum(day_new_failures) as new_failures,
        sum(day_resolved_failures) as resolved_failures
    from days
    group by org_code, peer_group, period_month
),

ranked as (
    select
        *,
        if(
            composite_score is null,
            null,
            rank() over (
                partition by period_month, peer_group
                order by ifNull(composite_score, -1) desc
            )
        ) as peer_rank
    from monthly
),

acceptance as (
    select * from {{ ref('stg_dq__acceptance') }}
),

final as (
    select
        ranked.*,
        acceptance.days_judged as acceptance_days_judged,
        acceptance.days_at_bar as acceptance_days_at_bar,
        acceptance.days_at_bar_pct as acceptance_days_at_bar_pct,
        acceptance.is_accepted as is_accepted
    from ranked
    left join acceptance
        on {{ same_keys('ranked', 'acceptance', ['org_code', 'period_month']) }}
)

select * from final
