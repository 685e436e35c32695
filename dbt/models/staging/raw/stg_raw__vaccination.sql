with

records as (
    {{ staged_records('vaccination') }}
),

renamed as (
    select
        org_code,
        vacc_id,
        id_no_hash as person_key,
        id_no_birth_date as id_birth_date,
        id_no_sex_code as id_sex_code,
        vaccine_code,
        dose_no,
        vacc_date,
        vacc_org_code,
        batch_no as vaccine_batch_no,
        {{ staging_lineage() }}
    from records
)

select * from renamed
