with

events as (
    select * from {{ source('dq', 'waiver_event') }}
),

renamed as (
    select
        waiver_id,
        event as waiver_event,
        rule as waived_rule,
        nullif(org_code, '') as org_code,
        nullif(peer_group, '') as peer_group,
        start_date,
        end_date,
        actor,
        text as event_text,
        at as event_at
    from events
)

select * from renamed
