{#- The person's regional health record (区域健康档案) as events in seven domains:
    basic_information       health record created, elderly health check, death registered
    major_problems_summary  every diagnosis recorded by a hospital (ICD-10)
    child_health            hospital encounters of children (age <= var child_max_age, or a
                            newborn stay)
    womens_health           encounters of women for pregnancy (ICD-10 chapter O) or
                            gynaecological conditions (N70-N98)
    disease_control_vaccination  vaccine doses
    chronic_disease_management   hypertension and type-2 diabetes follow-ups
    medical_service         all other outpatient, emergency and inpatient encounters -#}
{{ incremental_by_business_date(order_by='(person_key, record_domain, event_type)') }}

with

persons as (
    select
        person_key,
        sex_code,
        birth_date
    from {{ ref('dim_person') }}
),

record_persons as (
    select
        org_code,
        record_id,
        person_key
    from {{ ref('int_health_record_person') }}
),

encounters as (
    select
        encounters.*,
        persons.sex_code as sex_code,
        {{ age_in_years('persons.birth_date', 'encounters.start_date') }} as age_years
    from {{ ref('fct_encounter') }} as encounters
    left join persons
        on encounters.person_key = persons.person_key
    where {{ stale_business_date_filter('encounters.business_date') }}
),

encounter_events as (
    select
        person_key,
        start_date as event_date,
        started_at as event_at,
        multiIf(
            newborn_weight_g is not null
            or ifNull(age_years <= {{ var('child_max_age') }}, false), 'child_health',
            sex_code = '2'
            and (
                startsWith(upper(principal_dx_code), 'O')
                or substring(upper(principal_dx_code), 1, 3) between 'N70' and 'N98'
            ), 'womens_health',
            'medical_service'
        ) as record_domain,
        encounter_class as event_type,
        org_code,
        if(encounter_type_code = '2', 'inpatient_discharge', 'outpatient_visit')
            as source_dataset,
        encounter_id as source_id,
        principal_dx_code as code,
        dept_code as detail,
        business_date,
        source_changed_at
    from encounters
),

diagnosis_events as (
    select
        person_key,
        diagnosis_date as event_date,
        cast(null as Nullable(DateTime('Asia/Shanghai'))) as event_at,
        'major_problems_summary' as record_domain,
        'diagnosis' as event_type,
        org_code,
        if(encounter_type_code = '2', 'inpatient_discharge', 'outpatient_visit')
            as source_dataset,
        encounter_id as source_id,
        icd10_code as code,
        icd10_chapter as detail,
        business_date,
        source_changed_at
    from {{ ref('fct_diagnosis') }}
    where {{ stale_business_date_filter('business_date') }}
),

health_record_events as (
    select
        person_key,
        created_date as event_date,
        cast(null as Nullable(DateTime('Asia/Shanghai'))) as event_at,
        'basic_information' as record_domain,
        'health_record_created' as event_type,
        org_code,
        'health_record' as source_dataset,
        record_id as source_id,
        record_status_code as code,
        managing_org_code as detail,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__health_record') }}
    where {{ stale_business_date_filter('business_date') }}
),

elderly_check_events as (
    select
        record_persons.person_key as person_key,
        checks.check_date as event_date,
        cast(null as Nullable(DateTime('Asia/Shanghai'))) as event_at,
        'basic_information' as record_domain,
        'elderly_health_check' as event_type,
        checks.org_code as org_code,
        'elderly_check' as source_dataset,
        checks.check_id as source_id,
        cast(null as Nullable(String)) as code,
        concat(
            'BP ', toString(checks.sbp), '/', toString(checks.dbp), ', BMI ', toString(checks.bmi)
        ) as detail,
        checks.business_date as business_date,
        checks.source_changed_at as source_changed_at
    from {{ ref('stg_raw__elderly_check') }} as checks
    left join record_persons
        on {{ same_keys('checks', 'record_persons', ['org_code', 'record_id']) }}
    where {{ stale_business_date_filter('checks.business_date') }}
),

death_events as (
    select
        person_key,
        death_date as event_date,
        cast(null as Nullable(DateTime('Asia/Shanghai'))) as event_at,
        'basic_information' as record_domain,
        'death_registered' as event_type,
        org_code,
        'death_registration' as source_dataset,
        death_id as source_id,
        underlying_cause_code as code,
        death_place_code as detail,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__death_registration') }}
    where {{ stale_business_date_filter('business_date') }}
),

vaccination_events as (
    select
        person_key,
        vacc_date as event_date,
        cast(null as Nullable(DateTime('Asia/Shanghai'))) as event_at,
        'disease_control_vaccination' as record_domain,
        'vaccination' as event_type,
        org_code,
        'vaccination' as source_dataset,
        vacc_id as source_id,
        vaccine_code as code,
        concat('dose ', toString(dose_no)) as detail,
        business_date,
        source_changed_at
    from {{ ref('stg_raw__vaccination') }}
    where {{ stale_business_date_filter('business_date') }}
),

followup_events as (
    select
        record_persons.person_key as person_key,
        followups.followup_date as event_date,
        cast(null as Nullable(DateTime('Asia/Shanghai'))) as event_at,
        'chronic_disease_management' as record_domain,
        'chronic_followup' as event_type,
        followups.org_code as org_code,
        'chronic_followup' as source_dataset,
        followups.followup_id as source_id,
        followups.disease_code as code,
        if(
            followups.disease_code = 'E11',
            concat('FPG ', toString(followups.fasting_glucose)),
            concat('BP ', toString(followups.sbp), '/', toString(followups.dbp))
        ) as detail,
        followups.business_date as business_date,
        followups.source_changed_at as source_changed_at
    from {{ ref('stg_raw__chronic_followup') }} as followups
    left join record_persons
        on {{ same_keys('followups', 'record_persons', ['org_code', 'record_id']) }}
    where {{ stale_business_date_filter('followups.business_date') }}
),

unioned as (
    select * from encounter_events
    union all
    select * from diagnosis_events
    union all
    select * from health_record_events
    union all
    select * from elderly_check_events
    union all
    select * from death_events
    union all
    select * from vaccination_events
    union all
    select * from followup_events
),

known_persons as (
    select * from unioned
    where person_key is not null
),

final as (
    select
        assumeNotNull(person_key) as person_key,
        * except (person_key)
    from known_persons
)

select * from final
