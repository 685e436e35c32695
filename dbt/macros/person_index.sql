{#- dim_person is built incrementally from int_person_evidence (bench/: rebuilt from the whole
    history it took 2 s with one week and 13 s with four weeks behind a 1 M-row day, and
    8.9 GiB at 4 M rows a day). A person must be resolved again when a source record naming
    them is added or replaced; a business date is replaced as a whole (incremental.sql), so:

    1. int_person_evidence's pre-hook, before it deletes its stale dates, records in
       `person_evidence_stale` one marker row (date, NULL) per stale date and the persons the
       outgoing rows named (date, person_key): a person whose only evidence disappears must be
       resolved again too (and then drops out of dim_person);
    2. dim_person deletes and resolves again the persons recorded there or named by the new
       evidence of the recorded dates (`stale_persons`), reading their evidence only;
    3. dim_person's post-hook empties the log. A failed build leaves it, and the next build
       resolves those persons again: the log is idempotent.

    A --full-refresh must include both models (`--select +dim_person`). -#}

{% macro person_evidence_stale_log() -%}
    {{ this.schema }}.person_evidence_stale
{%- endmacro %}

{#- Two hooks, one statement each (the adapter runs a hook as one statement). -#}
{% macro create_person_evidence_stale_log() -%}
    create table if not exists {{ person_evidence_stale_log() }} (
        business_date Date32,
        person_key Nullable(String)
    ) engine = MergeTree() order by business_date
{%- endmacro %}

{#- One marker row (date, NULL) per stale date and the persons its outgoing rows name. -#}
{% macro log_stale_person_evidence() -%}
    {%- set dates = stale_business_dates() if is_incremental() else [] -%}
    {%- if dates -%}
        insert into {{ person_evidence_stale_log() }}
        select
            arrayJoin([{{ date_list(dates) }}]) as business_date,
            cast(null as Nullable(String)) as person_key
        union all
        select distinct business_date, person_key from {{ this }}
        where business_date in ({{ date_list(dates) }})
    {%- endif -%}
{%- endmacro %}

{#- The persons dim_person must resolve again (a subquery), read from the log and the new
    evidence of the logged dates. -#}
{% macro stale_persons(evidence) -%}
    select person_key from {{ evidence.schema }}.person_evidence_stale
    where person_key is not null
    union distinct
    select person_key from {{ evidence }}
    where business_date in (select business_date from {{ evidence.schema }}.person_evidence_stale)
{%- endmacro %}

{% macro delete_stale_persons() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where person_key in ({{ stale_persons(ref('int_person_evidence')) }})
    {%- endif -%}
{%- endmacro %}

{#- The hospital patients (int_patient_person) named by the given CTEs' rows only: the join
    of a fact's new rows builds its hash table from the day's patients, not from every
    patient the city has ever uploaded. -#}
{% macro patients_of(ctes) -%}
    select
        org_code,
        patient_id,
        person_key
    from {{ ref('int_patient_person') }}
    where (org_code, patient_id) in (
        {%- for cte in ctes %}
        select org_code, patient_id from {{ cte }}{{ " union all" if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}

{#- One source's rows as person evidence (int_person_evidence): `fields` are the optional
    demographics the source states (name_masked, sex_code, birth_date, death_date), each
    other one is a typed NULL; `county_code` is the expression of the person's county, if
    the source has one. -#}
{% macro person_evidence(dataset, precedence, fields, county_code='org_code') -%}
    {%- set optional = [
        ('name_masked', 'Nullable(String)'),
        ('sex_code', 'Nullable(String)'),
        ('birth_date', 'Nullable(Date32)'),
        ('id_birth_date', none),
        ('id_sex_code', none),
        ('death_date', 'Nullable(Date32)'),
    ] -%}
    select
        person_key,
        {{ precedence }} as precedence,
        '{{ dataset }}' as source_dataset,
        org_code,
        {{ county_code or 'cast(null as Nullable(String))' }} as county_code,
        {%- for column, null_type in optional %}
        {%- if column in fields or not null_type %}
        {{ column }},
        {%- else %}
        cast(null as {{ null_type }}) as {{ column }},
        {%- endif %}
        {%- endfor %}
        business_date as observed_date,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__' ~ dataset) }}
    where {{ stale_business_date_filter('business_date') }}
{%- endmacro %}
