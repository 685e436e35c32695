with

runs as (
    select
        business_date,
        run_id
    from {{ source('dq', 'current_run') }}
),

results as (
    select
        rule_result.run_id as dq_run_id,
        rule_result.org_code as org_code,
        rule_result.dataset as dataset,
        rule_result.business_date as business_date,
        rule_result.batch_version as batch_version,
        rule_result.rule_id as rule_id,
        rule_result.rule_type as rule_type,
        rule_result.dimension as dimension,
        rule_result.severity as severity,
        rule_result.weight as weight,
        rule_result.threshold as threshold_pct,
        rule_result.checked as rows_checked,
        rule_result.failed as rows_failed,
        rule_result.failed_pct as failed_pct,
        rule_result.status as status
    from {{ source('dq', 'rule_result') }} as rule_result
    inner join runs
        on {{ same_keys('rule_result', 'runs', ['business_date', 'run_id']) }}
)

select * from results
