{{ incremental_by_business_date(
    order_by='(business_date, org_code, encounter_key, diagnosis_seq)'
) }}

with

encounters as (
    {{ stale_rows('fct_encounter') }}
),

exploded as (
    select
        *,
        arrayConcat([principal_dx_code], other_dx_codes) as dx_codes,
        arrayJoin(arrayZip(dx_codes, arrayEnumerate(dx_codes))) as dx
    from encounters
),

diagnoses as (
    select
        encounter_key,
        org_code,
        encounter_type_code,
        encounter_class,
        encounter_id,
        person_key,
        toUInt8(dx.2 - 1) as diagnosis_seq,
        dx.2 = 1 as is_principal,
        trimBoth(dx.1) as diagnosis_code,
        {{ icd10_who_code('dx.1') }} as icd10_code,
        end_date as diagnosis_date,
        business_date,
        has_dq_warning,
        source_changed_at
    from exploded
    where notEmpty(trimBoth(ifNull(dx.1, '')))
),

categories as (
    select * from {{ ref('stg_reference__icd10_category') }}
),

final as (
    select
        diagnoses.*,
        substring(diagnoses.icd10_code, 1, 3) as icd10_category,
        categories.icd10_chapter_number as icd10_chapter_number,
        categories.icd10_chapter as icd10_chapter
    from diagnoses
    left join categories
        on substring(diagnoses.icd10_code, 1, 3) = categories.icd10_category
)

select * from final
