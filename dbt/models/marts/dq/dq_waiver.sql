{#- Every waiver (upload standard section 8) as it stands: the rule or rule type, the
    organisation or peer group, its dates (the end the earliest of its own and any ending),
    who added it and why, who last ended it and why. The history itself stays in
    dq.waiver_event, append-only. -#}
{{ config(order_by='(start_date, waiver_id)') }}

with

events as (
    select * from {{ ref('stg_dq__waiver_event') }}
),

waivers as (
    select
        waiver_id,
        anyIf(waived_rule, waiver_event = 'added') as waived_rule,
        anyIf(org_code, waiver_event = 'added') as org_code,
        anyIf(peer_group, waiver_event = 'added') as peer_group,
        minIf(start_date, waiver_event = 'added') as start_date,
        anyIf(end_date, waiver_event = 'added') as end_date_as_added,
        min(end_date) as effective_end_date,
        anyIf(actor, waiver_event = 'added') as added_by,
        minIf(event_at, waiver_event = 'added') as added_at,
        anyIf(event_text, waiver_event = 'added') as waiver_reason,
        countIf(waiver_event = 'ended') as endings,
        argMaxIf(actor, event_at, waiver_event = 'ended') as ender,
        maxIf(event_at, waiver_event = 'ended') as ending_at,
        argMaxIf(event_text, event_at, waiver_event = 'ended') as ending_reason,
        count() as events_recorded
    from events
    group by waiver_id
    having countIf(waiver_event = 'added') > 0
),

final as (
    select
        waiver_id,
        waived_rule,
        org_code,
        peer_group,
        start_date,
        effective_end_date as end_date,
        end_date_as_added,
        effective_end_date is null as is_open_ended,
        effective_end_date is not null and effective_end_date < start_date as is_withdrawn,
        added_by,
        added_at,
        waiver_reason,
        if(endings = 0, null, ender) as ended_by,
        if(endings = 0, null, ending_at) as ended_at,
        if(endings = 0, null, ending_reason) as end_reason,
        events_recorded
    from waivers
)

select * from final
