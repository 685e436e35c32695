with

records as (
    {{ staged_records('health_record') }}
),

renamed as (
    select
        org_code,
        record_id,
        id_no_hash as person_key,
        id_no_birth_date as id_birth_date,
        id_no_sex_code as id_sex_code,
        name_masked,
        sex_code,
        birth_date,
        division_code,
        managing_org_code,
        created_date,
        status as record_status_code,
        {{ staging_lineage() }}
    from records
)

select * from renamed
