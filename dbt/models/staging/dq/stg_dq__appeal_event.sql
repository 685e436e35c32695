with

events as (
    select * from {{ source('dq', 'appeal_event') }}
),

renamed as (
    select
        appeal_id,
        event as appeal_event,
        org_code,
        business_date,
        dataset,
        rule_id,
        batch_version,
        run_id as dq_run_id,
        actor,
        text as event_text,
        at as event_at
    from events
)

select * from renamed
