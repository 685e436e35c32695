{#- Everything the sources say about a person, one row per source record, ranked by the
    precedence dim_person resolves demographics with (1 wins):
    1 county health record (the resident's own record, identity number checked),
    2 hospital patient master,
    3 death registration,
    4 vaccination (the identity number only). -#}
with

health_records as (
    select
        person_key,
        1 as precedence,
        'health_record' as source_dataset,
        org_code,
        org_code as county_code,
        name_masked,
        sex_code,
        birth_date,
        id_birth_date,
        id_sex_code,
        cast(null as Nullable(Date32)) as death_date,
        business_date as observed_date
    from {{ ref('int_health_record_person') }}
),

patients as (
    select
        person_key,
        2 as precedence,
        'patient' as source_dataset,
        org_code,
        cast(null as Nullable(String)) as county_code,
        name_masked,
        sex_code,
        birth_date,
        id_birth_date,
        id_sex_code,
        cast(null as Nullable(Date32)) as death_date,
        business_date as observed_date
    from {{ ref('int_patient_person') }}
),

deaths as (
    select
        person_key,
        3 as precedence,
        'death_registration' as source_dataset,
        org_code,
        org_code as county_code,
        name_masked,
        sex_code,
        cast(null as Nullable(Date32)) as birth_date,
        id_birth_date,
        id_sex_code,
        death_date,
        business_date as observed_date
    from {{ ref('stg_raw__death_registration') }}
),

vaccinations as (
    select
        person_key,
        4 as precedence,
        'vaccination' as source_dataset,
        org_code,
        org_code as county_code,
        cast(null as Nullable(String)) as name_masked,
        cast(null as Nullable(String)) as sex_code,
        cast(null as Nullable(Date32)) as birth_date,
        id_birth_date,
        id_sex_code,
        cast(null as Nullable(Date32)) as death_date,
        business_date as observed_date
    from {{ ref('stg_raw__vaccination') }}
),

unioned as (
    select * from health_records
    union all
    select * from patients
    union all
    select * from deaths
    union all
    select * from vaccinations
)

select * from unioned
where person_key is not null
