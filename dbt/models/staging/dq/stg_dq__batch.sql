with

batches as (
    select * from {{ source('dq', 'batch') }} final
),

current_batches as (
    select * from {{ source('raw', 'current_batch') }}
),

final as (
    select
        batches.org_code as org_code,
        batches.dataset as dataset,
        batches.business_date as business_date,
        batches.batch_version as batch_version,
        length(batches.files) as files,
        batches.rows_read as rows_read,
        batches.rows_loaded as rows_loaded,
        batches.rows_quarantined as rows_quarantined,
        batches.manifest_problem as manifest_problem,
        batches.first_received_at as first_received_at,
        batches.last_received_at as last_received_at,
        batches.ingested_at as ingested_at
    from batches
    inner join current_batches
        on {{ same_keys(
            'batches', 'current_batches', ['org_code', 'dataset', 'business_date', 'batch_version']
        ) }}
)

select * from final
