{#- Incremental by key: a late or corrected patient batch replaces the latest row of the
    patients it names (macros/latest_by_key.sql). -#}
-- depends_on: {{ ref('stg_dq__business_date_stamp') }}
{{ incremental_latest_by_key('stg_raw__patient', ['org_code', 'patient_id']) }}

with

patients as (
    select
        org_code,
        patient_id,
        person_key,
        name_masked,
        sex_code,
        birth_date,
        id_birth_date,
        id_sex_code,
        updated_at,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__patient') }}
    where patient_id is not null and {{ changed_keys_filter(['org_code', 'patient_id']) }}
),

latest as (
    select *
    from patients
    order by org_code asc, patient_id asc, business_date desc, updated_at desc
    limit 1 by org_code, patient_id
)

select * from latest
