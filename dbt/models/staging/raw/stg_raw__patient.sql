with

records as (
    {{ staged_records('patient') }}
),

renamed as (
    select
        org_code,
        patient_id,
        id_type as id_type_code,
        id_no_hash as person_key,
        id_no_birth_date as id_birth_date,
        id_no_sex_code as id_sex_code,
        name_masked,
        sex_code,
        birth_date,
        ethnicity_code,
        phone_hash,
        address_division as address_division_code,
        updated_at,
        {{ staging_lineage() }}
    from records
)

select * from renamed
