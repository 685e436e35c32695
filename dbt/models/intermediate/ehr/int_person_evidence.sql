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
{{ incremental_by_business_date(
    order_by='(person_key, precedence, business_date)',
    pre_hook=["{{ create_person_evidence_stale_log() }}", "{{ log_stale_person_evidence() }}"],
) }}

with

health_records as (
    {{ person_evidence('health_record', 1, ['name_masked', 'sex_code', 'birth_date']) }}
),

patients as (
    {{ person_evidence('patient', 2, ['name_masked', 'sex_code', 'birth_date'], county_code=none) }}
),

deaths as (
    {{ person_evidence('death_registration', 3, ['name_masked', 'sex_code', 'death_date']) }}
),

vaccinations as (
    {{ person_evidence('vaccination', 4, []) }}
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
