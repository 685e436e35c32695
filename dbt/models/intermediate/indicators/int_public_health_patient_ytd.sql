{#- Year-to-date state of every managed patient at the end of each month: a patient with a
    follow-up in month m of a year counts as managed in m and every later month of that
    year, up to the latest month with county data. -#}
{{ config(order_by='(org_code, disease_code, record_id, as_of_month)') }}
{%- set standard = var('chronic_standard_management') -%}

with

monthly as (
    select * from {{ ref('int_chronic_followup_monthly') }}
),

horizon as (
    select max(period_month) as last_month from monthly
),

carried as (
    select
        monthly.*,
        arrayJoin(
            arrayMap(
                step -> addMonths(monthly.period_month, step),  -- noqa: RF03
                range(toUInt8(13 - toMonth(monthly.period_month)))
            )
        ) as as_of_month
    from monthly
),

ytd as (
    select
        org_code,
        disease_code,
        record_id,
        as_of_month,
        sum(followups) as followups_ytd,
        sum(standard_followups) as standard_followups_ytd,
        sum(standard_followups) >= {{ standard['min_followups_per_year'] }} as is_standard_managed,
        argMax(is_last_controlled, last_followup_date) as is_controlled_latest,
        max(last_followup_date) as latest_followup_date
    from carried
    where as_of_month <= (select horizon.last_month from horizon)
    group by org_code, disease_code, record_id, as_of_month
)

select * from ytd
