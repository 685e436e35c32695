with

changes as (
    select * from {{ source('dq', 'current_failure_change') }}
),

renamed as (
    select
        run_id as dq_run_id,
        org_code,
        business_date,
        dataset,
        rule_id,
        change as change_type
    from changes
)

select * from renamed
