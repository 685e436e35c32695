{#- Additive monthly components of the hospital indicators, per upload: every measure is
    counted in the month of its own event (visit date, admission date, discharge date,
    prescription date), whatever business date brought it. Monthly marts sum these rows, so
    a late record or a corrected batch changes only the business date it came in with. -#}
{{ incremental_by_business_date(order_by='(business_date, org_code, period_month)') }}
{%- set activity_key = ['org_code', 'business_date', 'period_month'] %}

with

visits as (
    {{ stale_rows('stg_raw__outpatient_visit') }}
),

stays as (
    {{ stale_rows('stg_raw__inpatient_discharge') }}
),

rx_items as (
    {{ stale_rows('stg_raw__prescription') }}
),

outpatient_prescriptions as (
    select
        org_code,
        business_date,
        rx_id,
        min(order_date) as rx_date,
        max(is_antibiotic) as has_antibiotic,
        max(is_infusion_iv) as has_infusion_iv,
        sum(amount) as rx_amount
    from rx_items
    where encounter_type_code = '1'
    group by org_code, business_date, rx_id
),

visit_measures as (
    select
        org_code,
        business_date,
        toStartOfMonth(visit_date) as period_month,
        countIf(not is_emergency) as outpatient_visits,
        countIf(is_emergency) as emergency_visits,
        sum(total_fee) as outpatient_fee,
        sum(drug_fee) as outpatient_drug_fee
    from visits
    where visit_date is not null
    group by org_code, business_date, period_month
),

discharge_measures as (
    select
        org_code,
        business_date,
        toStartOfMonth(discharge_date) as period_month,
        count() as discharges,
        sum(los_days) as patient_days,
        sum(total_fee) as inpatient_fee,
        sum(drug_fee) as inpatient_drug_fee,
        countIf(is_death) as inpatient_deaths,
        -- one operation per stay at most: the principal operation
        countIf(has_operation) as discharges_with_operation,
        countIf(has_operation and is_minimally_invasive) as minimally_invasive_operations,
        countIf(has_operation and op_level = 4) as level4_operations
    from stays
    where discharge_date is not null
    group by org_code, business_date, period_month
),

admission_measures as (
    select
        org_code,
        business_date,
        toStartOfMonth(admit_date) as period_month,
        count() as admissions
    from stays
    where admit_date is not null
    group by org_code, business_date, period_month
),

prescription_measures as (
    select
        org_code,
        business_date,
        toStartOfMonth(rx_date) as period_month,
        count() as outpatient_prescriptions,
        countIf(has_antibiotic) as antibiotic_prescriptions,
        countIf(has_infusion_iv) as infusion_prescriptions,
        countIf(rx_amount > {{ var('large_prescription_amount') }}) as large_prescriptions
    from outpatient_prescriptions
    where rx_date is not null
    group by org_code, business_date, period_month
),

antibiotic_measures as (
    select
        org_code,
        business_date,
        toStartOfMonth(order_date) as period_month,
        sum(ddd_count) as inpatient_antibiotic_ddd
    from rx_items
    where encounter_type_code = '2' and is_antibiotic and order_date is not null
    group by org_code, business_date, period_month
),

measure_keys as (
    {%- for measures in [
        'visit_measures',
        'discharge_measures',
        'admission_measures',
        'prescription_measures',
        'antibiotic_measures',
    ] %}
    select
        org_code,
        business_date,
        period_month
    from {{ measures }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

keys as (
    select distinct
        org_code,
        business_date,
        assumeNotNull(period_month) as period_month
    from measure_keys
),

stamps as (
    select
        business_date,
        source_changed_at
    from {{ ref('stg_dq__business_date_stamp') }}
),

joined as (
    select
        keys.org_code as org_code,
        keys.business_date as business_date,
        keys.period_month as period_month,
        toUInt64(ifNull(visit_measures.outpatient_visits, 0)) as outpatient_visits,
        toUInt64(ifNull(visit_measures.emergency_visits, 0)) as emergency_visits,
        toDecimal128(ifNull(visit_measures.outpatient_fee, 0), 2) as outpatient_fee,
        toDecimal128(ifNull(visit_measures.outpatient_drug_fee, 0), 2) as outpatient_drug_fee,
        toUInt64(ifNull(admission_measures.admissions, 0)) as admissions,
        toUInt64(ifNull(discharge_measures.discharges, 0)) as discharges,
        toInt64(ifNull(discharge_measures.patient_days, 0)) as patient_days,
        toDecimal128(ifNull(discharge_measures.inpatient_fee, 0), 2) as inpatient_fee,
        toDecimal128(ifNull(discharge_measures.inpatient_drug_fee, 0), 2) as inpatient_drug_fee,
        toUInt64(ifNull(discharge_measures.inpatient_deaths, 0)) as inpatient_deaths,
        toUInt64(ifNull(discharge_measures.discharges_with_operation, 0))
            as discharges_with_operation,
        toUInt64(ifNull(discharge_measures.minimally_invasive_operations, 0))
            as minimally_invasive_operations,
        toUInt64(ifNull(discharge_measures.level4_operations, 0)) as level4_operations,
        toUInt64(ifNull(prescription_measures.outpatient_prescriptions, 0))
            as outpatient_prescriptions,
        toUInt64(ifNull(prescription_measures.antibiotic_prescriptions, 0))
            as antibiotic_prescriptions,
        toUInt64(ifNull(prescription_measures.infusion_prescriptions, 0))
            as infusion_prescriptions,
        toUInt64(ifNull(prescription_measures.large_prescriptions, 0)) as large_prescriptions,
        toDecimal128(ifNull(antibiotic_measures.inpatient_antibiotic_ddd, 0), 3)
            as inpatient_antibiotic_ddd,
        stamps.source_changed_at as source_changed_at
    from keys
    left join visit_measures
        on {{ same_keys('keys', 'visit_measures', activity_key) }}
    left join discharge_measures
        on {{ same_keys('keys', 'discharge_measures', activity_key) }}
    left join admission_measures
        on {{ same_keys('keys', 'admission_measures', activity_key) }}
    left join prescription_measures
        on {{ same_keys('keys', 'prescription_measures', activity_key) }}
    left join antibiotic_measures
        on {{ same_keys('keys', 'antibiotic_measures', activity_key) }}
    left join stamps
        on keys.business_date = stamps.business_date
)

select * from joined
