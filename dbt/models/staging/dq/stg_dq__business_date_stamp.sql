with

batches as (
    select
        business_date,
        max(ingested_at) as last_ingested_at
    from {{ source('dq', 'batch') }}
    group by business_date
),

runs as (
    select
        business_date,
        run_id,
        finished_at
    from {{ source('dq', 'current_run') }}
),

final as (
    select
        batches.business_date as business_date,
        ifNull(runs.run_id, '') as dq_run_id,
        greatest(
            batches.last_ingested_at,
            ifNull(runs.finished_at, batches.last_ingested_at)
        ) as source_changed_at
    from batches
    left join runs
        on batches.business_date = runs.business_date
)

select * from final
