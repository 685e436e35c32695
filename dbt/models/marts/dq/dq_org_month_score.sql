{#- Monthly scores: the mean of the organisation's daily scores (days with a score), the
    month's peer-group rank by that mean and the month's acceptance. Means are exact and
    rounded half up to the ranking decimals, and ranks are standard competition ranks on
    them: the rule of the daily ranks (macros/scores.sql). -#}
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
        argMax(org_name, business_date) as org_name,  -- the month's latest name
        peer_group,
        argMax(county_code, business_date) as county_code,
        toStartOfMonth(business_date) as period_month,
        count() as days_scored,
        {{ mean_score('day_completeness_score') }} as completeness_score,
        {{ mean_score('day_timeliness_score') }} as timeliness_score,
        {{ mean_score('day_correctness_score') }} as correctness_score,
        {{ mean_score('day_logic_score') }} as logic_score,
        {{ mean_score('day_composite_score') }} as composite_score,
        {{ rounded_score('min(day_composite_score)') }} as worst_day_composite_score,
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
