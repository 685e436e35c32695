{{ config(order_by='(area_level, area_code, period_month, icd10_chapter_number)') }}

with

deaths as (
    select
        org_code,
        toStartOfMonth(assumeNotNull(death_date)) as period_month,
        substring({{ icd10_who_code('underlying_cause_code') }}, 1, 3) as icd10_category
    from {{ ref('stg_raw__death_registration') }}
    where death_date is not null
),

categories as (
    select * from {{ ref('stg_reference__icd10_category') }}
),

classified as (
    select
        deaths.org_code as org_code,
        deaths.period_month as period_month,
        ifNull(categories.icd10_chapter_number, 0) as icd10_chapter_number,
        ifNull(categories.icd10_chapter, 'unknown') as icd10_chapter,
        ifNull(categories.icd10_chapter_range, '') as icd10_chapter_range
    from deaths
    left join categories
        on deaths.icd10_category = categories.icd10_category
),

by_county as (
    select
        'county' as area_level,
        org_code as area_code,
        period_month,
        icd10_chapter_number,
        icd10_chapter,
        icd10_chapter_range,
        count() as deaths
    from classified
    group by org_code, period_month, icd10_chapter_number, icd10_chapter, icd10_chapter_range
),

city as (
    select
        'city' as area_level,
        'city' as area_code,
        period_month,
        icd10_chapter_number,
        icd10_chapter,
        icd10_chapter_range,
        sum(deaths) as deaths
    from by_county
    group by period_month, icd10_chapter_number, icd10_chapter, icd10_chapter_range
),

final as (
    select * from by_county
    union all
    select * from city
)

select * from final
