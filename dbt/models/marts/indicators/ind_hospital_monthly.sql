{#- Medical-service indicators (卫生统计指标) per month for every hospital, every county
    (hospitals by their registry county) and the city. Ratios are computed from the summed
    components of each level, never averaged from lower levels. -#}
{{ config(order_by='(area_level, area_code, period_month)') }}

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
        activity.org_code as org_code,
        hospitals.county_code as county_code,
        activity.period_month as period_month,
        sum(activity.outpatient_visits) as outpatient_visits,
        sum(activity.emergency_visits) as emergency_visits,
        sum(activity.outpatient_fee) as outpatient_fee,
        sum(activity.outpatient_drug_fee) as outpatient_drug_fee,
        sum(activity.admissions) as admissions,
        sum(activity.discharges) as discharges,
        sum(activity.patient_days) as patient_days,
        sum(activity.inpatient_fee) as inpatient_fee,
        sum(activity.inpatient_drug_fee) as inpatient_drug_fee,
        sum(activity.inpatient_deaths) as inpatient_deaths,
        sum(activity.outpatient_prescriptions) as outpatient_prescriptions,
        sum(activity.antibiotic_prescriptions) as antibiotic_prescriptions,
        sum(activity.infusion_prescriptions) as infusion_prescriptions,
        sum(activity.large_prescriptions) as large_prescriptions
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
        sum(outpatient_visits) as outpatient_visits,
        sum(emergency_visits) as emergency_visits,
        sum(outpatient_fee) as outpatient_fee,
        sum(outpatient_drug_fee) as outpatient_drug_fee,
        sum(admissions) as admissions,
        sum(discharges) as discharges,
        sum(patient_days) as patient_days,
        sum(inpatient_fee) as inpatient_fee,
        sum(inpatient_drug_fee) as inpatient_drug_fee,
        sum(inpatient_deaths) as inpatient_deaths,
        sum(outpatient_prescriptions) as outpatient_prescriptions,
        sum(antibiotic_prescriptions) as antibiotic_prescriptions,
        sum(infusion_prescriptions) as infusion_prescriptions,
        sum(large_prescriptions) as large_prescriptions,
        cast(null as Nullable(String)) as org_code,
        county_code
    from by_hospital
    group by county_code, period_month

    union all

    select
        'city' as area_level,
        'city' as area_code,
        period_month,
        sum(outpatient_visits) as outpatient_visits,
        sum(emergency_visits) as emergency_visits,
        sum(outpatient_fee) as outpatient_fee,
        sum(outpatient_drug_fee) as outpatient_drug_fee,
        sum(admissions) as admissions,
        sum(discharges) as discharges,
        sum(patient_days) as patient_days,
        sum(inpatient_fee) as inpatient_fee,
        sum(inpatient_drug_fee) as inpatient_drug_fee,
        sum(inpatient_deaths) as inpatient_deaths,
        sum(outpatient_prescriptions) as outpatient_prescriptions,
        sum(antibiotic_prescriptions) as antibiotic_prescriptions,
        sum(infusion_prescriptions) as infusion_prescriptions,
        sum(large_prescriptions) as large_prescriptions,
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
