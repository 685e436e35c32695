{#- Per rule and business date (current validation runs): how many organisations it judged
    and failed, rows checked and failed, and failures new or resolved since the previous day. -#}
{{ config(order_by='(business_date, rule_id)') }}

with

results as (
    select * from {{ ref('stg_dq__current_rule_result') }}
),

changes as (
    select
        business_date,
        rule_id,
        countIf(change_type = 'new') as organizations_newly_failing,
        countIf(change_type = 'resolved') as organizations_resolved
    from {{ ref('stg_dq__failure_change') }}
    group by business_date, rule_id
),

by_rule as (
    select
        business_date,
        rule_id,
        -- deterministic (any() is not: two builds of one day differed): a rule's type,
        -- dimension and severity are one per rule; a cross-dataset rule's results carry each
        -- judged dataset, and the row names them all, sorted, comma-separated
        min(rule_type) as rule_type,
        arrayStringConcat(arraySort(groupUniqArray(dataset)), ',') as dataset,
        min(dimension) as dimension,
        min(severity) as severity,
        uniqExactIf(org_code, status in ('passed', 'failed')) as organizations_judged,
        uniqExactIf(org_code, status = 'failed') as organizations_failed,
        countIf(status = 'error') as results_in_error,
        sum(rows_checked) as rows_checked,
        sum(rows_failed) as rows_failed
    from results
    group by business_date, rule_id
),

final as (
    select
        by_rule.*,
        {{ ratio('by_rule.rows_failed', 'by_rule.rows_checked', digits=4) }} as rows_failed_pct,
        ifNull(changes.organizations_newly_failing, 0) as organizations_newly_failing,
        ifNull(changes.organizations_resolved, 0) as organizations_resolved
    from by_rule
    left join changes
        on {{ same_keys('by_rule', 'changes', ['business_date', 'rule_id']) }}
)

select * from final
