{#- Medical-service indicators (卫生统计指标) per month for every hospital, every county
    (hospitals by their registry county) and the city. Ratios are computed from the summed
    components of each level, never averaged from lower levels. -#}
{{ config(order_by='(area_level, area_code, period_month)') }}
{#- The additive components of int_hospital_activity, summed at every level. -#}
{%- set components = [
    'outpatient_visits',
    'emergency_visits',
    'outpatient_fee',
    'outpatient_drug_fee',
    'admissions',
    'discharges',
    'patient_days',
    'inpatient_fee',
    'inpatient_drug_fee',
    'inpatient_deaths',
    'outpatient_prescriptions',
    'antibiotic_prescriptions',
    'infusion_prescriptions',
    'large_prescriptions',
] %}

with

activity as (
    select * from {{ ref('int_hospital_activity') }}
),

hospitals as (
    select
        org_code,
        county_code
    from {{ ref('dim_organization') }}
    where org_kind = 'hospital'
),

by_hospital as (
    select
        activity.period_month as period_month,
        {%- for column in components %}
        sum(activity.{{ column }}) as {{ column }},
        {%- endfor %}
        activity.org_code as org_code,
        hospitals.county_code as county_code
    from activity
    inner join hospitals
        on activity.org_code = hospitals.org_code
    group by activity.org_code, hospitals.county_code, activity.period_month
),

levels as (
    select
        'organization' as area_level,
        org_code as area_code,
        * except (org_code, county_code),
        org_code,
        county_code
    from by_hospital

    union all

    select
        'county' as area_level,
        county_code as area_code,
        period_month,
        {%- for column in components %}
        sum({{ column }}) as {{ column }},
        {%- endfor %}
        cast(null as Nullable(String)) as org_code,
        county_code
    from by_hospital
    group by county_code, period_month

    union all

    select
        'city' as area_level,
        'city' as area_code,
        period_month,
        {%- for column in components %}
        sum({{ column }}) as {{ column }},
        {%- endfor %}
        cast(null as Nullable(String)) as org_code,
        cast(null as Nullable(String)) as county_code
    from by_hospital
    group by period_month
),

final as (
    select
        area_level,
        area_code,
        org_code,
        county_code,
        period_month,
        outpatient_visits,
        emergency_visits,
        outpatient_visits + emergency_visits as outpatient_emergency_visits,
        admissions,
        discharges,
        patient_days,
        {{ ratio('patient_days', 'discharges', scale=1) }} as avg_los_days,
        inpatient_deaths,
        outpatient_fee,
        {{ ratio('outpatient_fee', 'outpatient_visits + emergency_visits', scale=1) }}
            as avg_fee_per_outpatient_visit,
        inpatient_fee,
        {{ ratio('inpatient_fee', 'discharges', scale=1) }} as avg_fee_per_inpatient_stay,
        outpatient_drug_fee,
        inpatient_drug_fee,
        {{ ratio('outpatient_drug_fee + inpatient_drug_fee', 'outpatient_fee + inpatient_fee') }}
            as drug_fee_share_pct,
        {{ ratio('outpatient_drug_fee', 'outpatient_fee') }} as outpatient_drug_fee_share_pct,
        {{ ratio('inpatient_drug_fee', 'inpatient_fee') }} as inpatient_drug_fee_share_pct,
        outpatient_prescriptions,
        antibiotic_prescriptions,
        {{ ratio('antibiotic_prescriptions', 'outpatient_prescriptions') }}
            as antibiotic_prescription_pct,
        infusion_prescriptions,
        {{ ratio('infusion_prescriptions', 'outpatient_prescriptions') }}
            as infusion_prescription_pct,
        large_prescriptions,
        {{ ratio('large_prescriptions', 'outpatient_prescriptions') }} as large_prescription_pct
    from levels
)

select * from final
