with

explanation as (
    select * from {{ source('dq', 'current_score_explanation') }}
),

renamed as (
    select
        run_id as dq_run_id,
        business_date,
        level as explanation_level,
        org_code,
        dataset,
        rule_id,
        rule_type,
        dimension,
        status as result_status,
        cause as loss_cause,
        failed_rows as rows_failed,
        points as points_lost,
        lost_total as points_lost_total,
        computed_at as scored_at
    from explanation
)

select * from renamed
