{#- Every appeal (upload standard section 8) as it stands: the result appealed, who
    submitted it, when and why, and its decision (the latest approved or rejected event).
    The history itself stays in dq.appeal_event, append-only. -#}
{{ config(order_by='(business_date, org_code, appeal_id)') }}

with

events as (
    select * from {{ ref('stg_dq__appeal_event') }}
),

organizations as (
    select * from {{ ref('dim_organization') }}
),

appeals as (
    select
        appeal_id,
        anyIf(org_code, appeal_event = 'submitted') as org_code,
        anyIf(business_date, appeal_event = 'submitted') as business_date,
        anyIf(dataset, appeal_event = 'submitted') as dataset,
        anyIf(rule_id, appeal_event = 'submitted') as rule_id,
        anyIf(batch_version, appeal_event = 'submitted') as batch_version,
        anyIf(dq_run_id, appeal_event = 'submitted') as dq_run_id,
        anyIf(actor, appeal_event = 'submitted') as submitted_by,
        minIf(event_at, appeal_event = 'submitted') as submitted_at,
        anyIf(event_text, appeal_event = 'submitted') as appeal_reason,
        countIf(appeal_event in ('approved', 'rejected')) as decisions,
        argMaxIf(appeal_event, event_at, appeal_event in ('approved', 'rejected')) as decision,
        argMaxIf(actor, event_at, appeal_event in ('approved', 'rejected')) as decider,
        maxIf(event_at, appeal_event in ('approved', 'rejected')) as decision_at,
        argMaxIf(event_text, event_at, appeal_event in ('approved', 'rejected')) as decision_text,
        count() as events_recorded
    from events
    group by appeal_id
    having countIf(appeal_event = 'submitted') > 0
),

final as (
    select
        appeals.appeal_id as appeal_id,
        appeals.org_code as org_code,
        organizations.org_name as org_name,
        organizations.peer_group as peer_group,
        organizations.county_code as county_code,
        appeals.business_date as business_date,
        appeals.dataset as dataset,
        appeals.rule_id as rule_id,
        appeals.batch_version as batch_version,
        appeals.dq_run_id as dq_run_id,
        if(appeals.decisions = 0, 'open', appeals.decision) as appeal_status,
        appeals.decisions = 0 as is_open,
        appeals.decision = 'approved' and appeals.decisions > 0 as is_waived,
        appeals.submitted_by as submitted_by,
        appeals.submitted_at as submitted_at,
        appeals.appeal_reason as appeal_reason,
        if(appeals.decisions = 0, null, appeals.decider) as decided_by,
        if(appeals.decisions = 0, null, appeals.decision_at) as decided_at,
        if(appeals.decisions = 0, null, appeals.decision_text) as decision_comment,
        appeals.events_recorded as events_recorded
    from appeals
    left join organizations
        on appeals.org_code = organizations.org_code
)

select * from final
