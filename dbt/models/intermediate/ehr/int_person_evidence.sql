{#- Everything the sources say about a person, one row per source record version, ranked by
    the precedence dim_person resolves demographics with (1 wins):
    1 county health record (the resident's own record, identity number checked),
    2 hospital patient master,
    3 death registration,
    4 vaccination (the identity number only).
    Every current row of the staging tables counts, not only the latest row of a patient or
    record: a superseded row of the same source loses on recency in dim_person, and a person
    key a fact row was built with stays in dim_person. Incremental by business date, and
    logs the persons of replaced dates for dim_person (macros/person_index.sql). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    order_by='(person_key, precedence, business_date)',
    partition_by='toYYYYMM(business_date)',
    pre_hook=[
        "{{ create_person_evidence_stale_log() }}",
        "{{ log_stale_person_evidence() }}",
        "{{ delete_stale_business_dates() }}",
    ],
) }}

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
        business_date as observed_date,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__health_record') }}
    where {{ stale_business_date_filter('business_date') }}
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
        business_date as observed_date,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__patient') }}
    where {{ stale_business_date_filter('business_date') }}
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
        business_date as observed_date,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__death_registration') }}
    where {{ stale_business_date_filter('business_date') }}
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
        business_date as observed_date,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__vaccination') }}
    where {{ stale_business_date_filter('business_date') }}
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

select
    assumeNotNull(person_key) as person_key,
    * except (person_key)
from unioned
where person_key is not null
