{{ incremental_by_business_date(order_by='(business_date, org_code, lab_result_key)') }}

with

results as (
    {{ stale_rows('stg_raw__lab_result') }}
),

persons as (
    {{ patients_of(['results']) }}
),

final as (
    select
        concat(results.org_code, '|', ifNull(results.result_id, '')) as lab_result_key,
        results.org_code as org_code,
        results.result_id as result_id,
        results.report_id as report_id,
        results.encounter_id as encounter_id,
        results.patient_id as patient_id,
        persons.person_key as person_key,
        results.item_code as item_code,
        results.item_name as item_name,
        results.result_value as result_value,
        results.result_numeric as result_numeric,
        results.unit as unit,
        results.ref_low as ref_low,
        results.ref_high as ref_high,
        results.abnormal_flag as abnormal_flag,
        results.is_abnormal as is_abnormal,
        results.sampled_at as sampled_at,
        results.reported_at as reported_at,
        results.report_date as report_date,
        results.business_date as business_date,
        results.has_dq_warning as has_dq_warning,
        results.source_changed_at as source_changed_at
    from results
    left join persons
        on {{ same_keys('results', 'persons', ['org_code', 'patient_id']) }}
)

select * from final
