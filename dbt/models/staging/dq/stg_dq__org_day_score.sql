with

scores as (
    select * from {{ source('dq', 'current_score_org_day') }}
),

renamed as (
    select
        run_id as dq_run_id,
        org_code,
        peer_group,
        business_date,
        completeness as completeness_score,
        timeliness as timeliness_score,
        correctness as correctness_score,
        logic as logic_score,
        composite as composite_score,
        rank as peer_rank,
        peer_size,
        rank_change_day,
        rank_change_month,
        rules_failed,
        blocking_failed as blocking_rules_failed,
        rules_error,
        rules_waived,
        new_failures,
        resolved_failures,
        persisting_failures,
        computed_at as scored_at
    from scores
)

select * from renamed
