{#- Per organisation-day (explanation_level org_day) and per batch (batch): the points of the
    composite each failed rule cost, from the current scoring (expectations/scoring/explain.py).
    Points are Decimal(38, 12) and sum exactly to points_lost_total per organisation-day, and
    per batch. -#}
{{ config(order_by='(business_date, org_code, explanation_level, dataset, rule_id)') }}

with

explanation as (
    select * from {{ ref('stg_dq__score_explanation') }}
),

organizations as (
    select * from {{ ref('dim_organization') }}
),

final as (
    select
        explanation.business_date as business_date,
        explanation.org_code as org_code,
        organizations.org_name as org_name,
        organizations.county_code as county_code,
        explanation.explanation_level as explanation_level,
        explanation.dataset as dataset,
        explanation.rule_id as rule_id,
        explanation.rule_type as rule_type,
        explanation.dimension as dimension,
        explanation.result_status as result_status,
        explanation.loss_cause as loss_cause,
        explanation.rows_failed as rows_failed,
        explanation.points_lost as points_lost,
        explanation.points_lost_total as points_lost_total,
        cast(explanation.result_status = 'waived' as Bool) as is_waived,
        explanation.dq_run_id as dq_run_id
    from explanation
    left join organizations
        on explanation.org_code = organizations.org_code
)

select * from final
