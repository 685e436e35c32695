{{ incremental_by_business_date(order_by='(business_date, org_code, encounter_key)') }}

with

visits as (
    {{ stale_rows('stg_raw__outpatient_visit') }}
),

stays as (
    {{ stale_rows('stg_raw__inpatient_discharge') }}
),

persons as (
    {{ patients_of(['visits', 'stays']) }}
),

outpatient as (
    select
        org_code,
        '1' as encounter_type_code,
        if(is_emergency, 'emergency', 'outpatient') as encounter_class,
        visit_id as encounter_id,
        patient_id,
        visit_at as started_at,
        visit_at as ended_at,
        visit_date as start_date,
        visit_date as end_date,
        dept_code,
        dept_name,
        cast(null as Nullable(String)) as admit_dept_code,
        diagnosis_code as principal_dx_code,
        cast([], 'Array(String)') as other_dx_codes,
        cast(null as Nullable(Int64)) as los_days,
        total_fee,
        drug_fee,
        cast(null as Nullable(Decimal(12, 2))) as antibiotic_fee,
        material_fee,
        exam_fee,
        lab_fee,
        treatment_fee,
        other_fee,
        cast(null as Nullable(String)) as principal_op_code,
        false as has_operation,
        cast(null as Nullable(Int64)) as op_level,
        false as is_minimally_invasive,
        cast(null as Nullable(String)) as discharge_method_code,
        false as is_death,
        cast(null as Nullable(Int64)) as newborn_weight_g,
        business_date,
        batch_version,
        has_dq_warning,
        source_changed_at
    from visits
),

inpatient as (
    select
        org_code,
        '2' as encounter_type_code,
        'inpatient' as encounter_class,
        admission_id as encounter_id,
        patient_id,
        admitted_at as started_at,
        discharged_at as ended_at,
        admit_date as start_date,
        discharge_date as end_date,
        discharge_dept_code as dept_code,
        cast(null as Nullable(String)) as dept_name,
        admit_dept_code,
        principal_dx_code,
        other_dx_codes,
        los_days,
        total_fee,
        drug_fee,
        antibiotic_fee,
        material_fee,
        cast(null as Nullable(Decimal(12, 2))) as exam_fee,
        cast(null as Nullable(Decimal(12, 2))) as lab_fee,
        cast(null as Nullable(Decimal(12, 2))) as treatment_fee,
        cast(null as Nullable(Decimal(12, 2))) as other_fee,
        principal_op_code,
        has_operation,
        op_level,
        is_minimally_invasive,
        discharge_method_code,
        is_death,
        newborn_weight_g,
        business_date,
        batch_version,
        has_dq_warning,
        source_changed_at
    from stays
),

encounters as (
    select * from outpatient
    union all
    select * from inpatient
),

final as (
    select
        concat(
            encounters.org_code, '|', encounters.encounter_type_code, '|',
            ifNull(encounters.encounter_id, '')
        ) as encounter_key,
        encounters.*,
        persons.person_key as person_key
    from encounters
    left join persons
        on {{ same_keys('encounters', 'persons', ['org_code', 'patient_id']) }}
)

select * from final
