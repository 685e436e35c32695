{#- Demographics are resolved field by field: the value from the source of best precedence
    (int_person_evidence: health record, patient master, death registration, vaccination),
    the most recent observation within a source; when no source states a sex (1 or 2) or a
    birth date, the one carried by the identity number.
    Incremental: a build resolves again only the persons whose evidence changed
    (macros/person_index.sql), so a day costs its own evidence, not the whole history. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    order_by='(person_key)',
    pre_hook="{{ delete_stale_persons() }}",
    post_hook="truncate table if exists {{ ref('int_person_evidence').schema }}.person_evidence_stale",
) }}

with

evidence as (
    select
        *,
        tuple(precedence, -toRelativeDayNum(observed_date)) as rank_key
    from {{ ref('int_person_evidence') }}
    {%- if is_incremental() %}
    where person_key in ({{ stale_persons(ref('int_person_evidence')) }})
    {%- endif %}
),

resolved as (
    select
        person_key,
        argMinIf(name_masked, rank_key, name_masked is not null) as name_masked,
        argMinIf(sex_code, rank_key, sex_code in ('1', '2')) as stated_sex_code,
        argMinIf(id_sex_code, rank_key, id_sex_code is not null) as id_sex_code,
        argMinIf(source_dataset, rank_key, sex_code in ('1', '2')) as stated_sex_source,
        argMinIf(birth_date, rank_key, birth_date is not null) as stated_birth_date,
        argMinIf(id_birth_date, rank_key, id_birth_date is not null) as id_birth_date,
        argMinIf(source_dataset, rank_key, birth_date is not null) as stated_birth_source,
        argMaxIf(death_date, observed_date, death_date is not null) as death_date,
        argMinIf(county_code, rank_key, county_code is not null) as home_county_code,
        countIf(source_dataset = 'health_record') > 0 as has_health_record,
        uniqExactIf(org_code, source_dataset = 'patient') as hospitals_seen,
        arraySort(groupUniqArray(source_dataset)) as source_datasets,
        min(observed_date) as first_seen_date,
        max(observed_date) as last_seen_date
    from evidence
    group by person_key
),

final as (
    select
        assumeNotNull(person_key) as person_key,
        name_masked,
        coalesce(stated_sex_code, id_sex_code) as sex_code,
        multiIf(
            stated_sex_code is not null, stated_sex_source,
            id_sex_code is not null, 'identity_number',
            null
        ) as sex_source,
        coalesce(stated_birth_date, id_birth_date) as birth_date,
        multiIf(
            stated_birth_date is not null, stated_birth_source,
            id_birth_date is not null, 'identity_number',
            null
        ) as birth_date_source,
        death_date,
        death_date is not null as is_deceased,
        home_county_code,
        has_health_record,
        hospitals_seen,
        source_datasets,
        first_seen_date,
        last_seen_date
    from resolved
)

select * from final
