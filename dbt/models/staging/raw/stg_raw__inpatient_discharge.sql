with

records as (
    {{ staged_records('inpatient_discharge') }}
),

renamed as (
    select
        org_code,
        admission_id,
        patient_id,
        admit_time as admitted_at,
        discharge_time as discharged_at,
        toDate(admit_time) as admit_date,
        toDate(discharge_time) as discharge_date,
        los_days,
        admit_dept_code,
        discharge_dept_code,
        principal_dx_code,
        arrayFilter(
            code -> notEmpty(code),
            arrayMap(code -> trimBoth(code), splitByChar(';', ifNull(other_dx_codes, '')))
        ) as other_dx_codes,
        nullIf(trimBoth(ifNull(principal_op_code, '')), '') as principal_op_code,
        notEmpty(trimBoth(ifNull(principal_op_code, ''))) as has_operation,
        op_level,
        ifNull(minimally_invasive = 1, false) as is_minimally_invasive,
        discharge_method as discharge_method_code,
        -- discharge_method 5 = 死亡 (code system discharge_method)
        ifNull(discharge_method = '5', false) as is_death,
        total_fee,
        drug_fee,
        antibiotic_fee,
        material_fee,
        newborn_weight_g,
        {{ staging_lineage() }}
    from records
)

select * from renamed
