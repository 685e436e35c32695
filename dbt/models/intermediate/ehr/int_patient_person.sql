with

patients as (
    select
        org_code,
        patient_id,
        person_key,
        name_masked,
        sex_code,
        birth_date,
        id_birth_date,
        id_sex_code,
        updated_at,
        business_date
    from {{ ref('stg_raw__patient') }}
    where patient_id is not null
),

latest as (
    select *
    from patients
    order by org_code asc, patient_id asc, business_date desc, updated_at desc
    limit 1 by org_code, patient_id
)

select * from latest
