with

records as (
    {{ staged_records('outpatient_visit') }}
),

renamed as (
    select
        org_code,
        visit_id,
        patient_id,
        visit_time as visit_at,
        toDate(visit_time) as visit_date,
        visit_type as visit_type_code,
        ifNull(visit_type = '2', false) as is_emergency,
        dept_code,
        dept_name,
        doctor_id,
        diagnosis_code,
        diagnosis_name,
        total_fee,
        drug_fee,
        exam_fee,
        lab_fee,
        treatment_fee,
        material_fee,
        other_fee,
        {{ staging_lineage() }}
    from records
)

select * from renamed
