{#- One row per county, disease, health record and month with follow-ups: how many, how many
    count toward standardised management (methods in var chronic_standard_management), and
    the month's latest follow-up and whether it was controlled (var bp_control for I10,
    var glucose_control_below for E11). -#}
{{ config(order_by='(org_code, disease_code, record_id, period_month)') }}
{%- set standard = var('chronic_standard_management') -%}
{%- set bp = var('bp_control') -%}

with

followups as (
    select
        org_code,
        record_id,
        disease_code,
        followup_date,
        followup_method_code,
        followup_id,
        multiIf(
            disease_code = 'I10', sbp < {{ bp['sbp_below'] }} and dbp < {{ bp['dbp_below'] }},
            disease_code = 'E11', fasting_glucose < {{ var('glucose_control_below') }},
            null
        ) as is_controlled
    from {{ ref('stg_raw__chronic_followup') }}
    where
        record_id is not null
        and followup_date is not null
        and disease_code in ('I10', 'E11')
),

monthly as (
    select
        org_code,
        assumeNotNull(disease_code) as disease_code,
        assumeNotNull(record_id) as record_id,
        toStartOfMonth(assumeNotNull(followup_date)) as period_month,
        count() as followups,
        countIf(followup_method_code in {{ sql_tuple(standard['followup_methods']) }})
            as standard_followups,
        max(followup_date) as last_followup_date,
        ifNull(argMax(is_controlled, tuple(followup_date, followup_id)), false)
            as is_last_controlled
    from followups
    group by org_code, disease_code, record_id, period_month
)

select * from monthly
