with

records as (
    {{ staged_records('death_registration') }}
),

renamed as (
    select
        org_code,
        death_id,
        id_no_hash as person_key,
        id_no_birth_date as id_birth_date,
        id_no_sex_code as id_sex_code,
        name_masked,
        sex_code,
        death_date,
        underlying_cause_code,
        death_place_code,
        {{ staging_lineage() }}
    from records
)

select * from renamed
