with

records as (
    {{ staged_records('lab_result') }}
),

renamed as (
    select
        org_code,
        result_id,
        report_id,
        encounter_id,
        patient_id,
        item_code,
        item_name,
        result_value,
        toFloat64OrNull(result_value) as result_numeric,
        unit,
        ref_low,
        ref_high,
        abnormal_flag,
        ifNull(abnormal_flag in ('H', 'L', 'A'), false) as is_abnormal,
        sampled_at,
        reported_at,
        toDate(reported_at) as report_date,
        {{ staging_lineage() }}
    from records
)

select * from renamed
