{#- Incremental by key: a late or corrected health-record batch replaces the latest row of
    the records it names (macros/latest_by_key.sql). -#}
-- depends_on: {{ ref('stg_dq__business_date_stamp') }}
{{ incremental_latest_by_key('stg_raw__health_record', ['org_code', 'record_id']) }}

with

records as (
    select
        org_code,
        record_id,
        person_key,
        name_masked,
        sex_code,
        birth_date,
        id_birth_date,
        id_sex_code,
        division_code,
        managing_org_code,
        created_date,
        record_status_code,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__health_record') }}
    where record_id is not null and {{ changed_keys_filter(['org_code', 'record_id']) }}
),

latest as (
    select *
    from records
    order by org_code asc, record_id asc, business_date desc
    limit 1 by org_code, record_id
)

select * from latest
