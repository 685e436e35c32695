{#- Tertiary public-hospital performance assessment (三级公立医院绩效考核) indicators per
    hospital, for the month and the year to date. Formulas in _performance__models.yml. -#}
{{ config(order_by='(org_code, period_month, period_type)') }}
{%- set abx = var('antibiotic_intensity') -%}

with

activity as (
    select
        org_code,
        period_month,
        sum(outpatient_visits + emergency_visits) as outpatient_emergency_visits,
        sum(outpatient_fee) as outpatient_fee,
        sum(discharges) as discharges,
        sum(patient_days) as patient_days,
        sum(inpatient_fee) as inpatient_fee,
        sum(discharges_with_operation) as discharges_with_operation,
        sum(minimally_invasive_operations) as minimally_invasive_operations,
        sum(level4_operations) as level4_operations,
        sum(inpatient_antibiotic_ddd) as inpatient_antibiotic_ddd
    from {{ ref('int_hospital_activity') }}
    group by org_code, period_month
),

cumulative as (
    select
        org_code,
        period_month,
        sum(outpatient_emergency_visits) over year_to_date as outpatient_emergency_visits,
        sum(outpatient_fee) over year_to_date as outpatient_fee,
        sum(discharges) over year_to_date as discharges,
        sum(patient_days) over year_to_date as patient_days,
        sum(inpatient_fee) over year_to_date as inpatient_fee,
        sum(discharges_with_operation) over year_to_date as discharges_with_operation,
        sum(minimally_invasive_operations) over year_to_date as minimally_invasive_operations,
        sum(level4_operations) over year_to_date as level4_operations,
        sum(inpatient_antibiotic_ddd) over year_to_date as inpatient_antibiotic_ddd
    from activity
    window year_to_date as (
        partition by org_code, toYear(period_month)
        order by period_month
        rows between unbounded preceding and current row
    )
),

periods as (
    select
        'month' as period_type,
        *
    from activity
    union all
    select
        'ytd' as period_type,
        *
    from cumulative
),

metrics as (
    select
        period_type,
        org_code,
        period_month,
        discharges,
        discharges_with_operation,
        {{ ratio('discharges_with_operation', 'discharges') }} as surgery_share_pct,
        minimally_invasive_operations,
        {{ ratio('minimally_invasive_operations', 'discharges_with_operation') }}
            as minimally_invasive_share_pct,
        level4_operations,
        {{ ratio('level4_operations', 'discharges_with_operation') }} as level4_share_pct,
        patient_days,
        inpatient_antibiotic_ddd,
        {{ ratio('inpatient_antibiotic_ddd', 'patient_days') }} as antibiotic_use_intensity,
        patient_days < {{ abx['min_patient_days'] }} as is_antibiotic_intensity_low_volume,
        ifNull(
            {{ ratio('inpatient_antibiotic_ddd', 'patient_days') }} > {{ abx['max_plausible'] }},
            false
        ) as is_antibiotic_intensity_implausible,
        {{ ratio('patient_days', 'discharges', scale=1) }} as avg_los_days,
        outpatient_emergency_visits,
        outpatient_fee,
        {{ ratio('outpatient_fee', 'outpatient_emergency_visits', scale=1) }}
            as avg_fee_per_outpatient_visit,
        inpatient_fee,
        {{ ratio('inpatient_fee', 'discharges', scale=1) }} as avg_fee_per_inpatient_stay
    from periods
),

hospitals as (
    select
        org_code,
        org_name,
        org_level,
        county_code
    from {{ ref('dim_organization') }}
    where org_kind = 'hospital'
),

final as (
    select
        this_period.period_type as period_type,
        this_period.org_code as org_code,
        hospitals.org_name as org_name,
        hospitals.org_level as org_level,
        hospitals.county_code as county_code,
        this_period.period_month as period_month,
        this_period.discharges as discharges,
        this_period.discharges_with_operation as discharges_with_operation,
        this_period.surgery_share_pct as surgery_share_pct,
        this_period.minimally_invasive_operations as minimally_invasive_operations,
        this_period.minimally_invasive_share_pct as minimally_invasive_share_pct,
        this_period.level4_operations as level4_operations,
        this_period.level4_share_pct as level4_share_pct,
        this_period.patient_days as patient_days,
        this_period.inpatient_antibiotic_ddd as inpatient_antibiotic_ddd,
        this_period.antibiotic_use_intensity as antibiotic_use_intensity,
        this_period.is_antibiotic_intensity_low_volume as is_antibiotic_intensity_low_volume,
        this_period.is_antibiotic_intensity_implausible as is_antibiotic_intensity_implausible,
        this_period.avg_los_days as avg_los_days,
        this_period.outpatient_emergency_visits as outpatient_emergency_visits,
        this_period.outpatient_fee as outpatient_fee,
        this_period.avg_fee_per_outpatient_visit as avg_fee_per_outpatient_visit,
        this_period.inpatient_fee as inpatient_fee,
        this_period.avg_fee_per_inpatient_stay as avg_fee_per_inpatient_stay,
        prior_year.avg_fee_per_outpatient_visit as prior_year_avg_fee_per_outpatient_visit,
        {{ ratio(
            'this_period.avg_fee_per_outpatient_visit - prior_year.avg_fee_per_outpatient_visit',
            'prior_year.avg_fee_per_outpatient_visit'
        ) }} as avg_fee_per_outpatient_visit_yoy_pct,
        prior_year.avg_fee_per_inpatient_stay as prior_year_avg_fee_per_inpatient_stay,
        {{ ratio(
            'this_period.avg_fee_per_inpatient_stay - prior_year.avg_fee_per_inpatient_stay',
            'prior_year.avg_fee_per_inpatient_stay'
        ) }} as avg_fee_per_inpatient_stay_yoy_pct
    from metrics as this_period
    inner join hospitals
        on this_period.org_code = hospitals.org_code
    left join metrics as prior_year
        on
            this_period.org_code = prior_year.org_code
            and this_period.period_type = prior_year.period_type
            and addMonths(this_period.period_month, -12) = prior_year.period_month
)

select * from final
