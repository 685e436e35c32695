with

categories as (
    select * from {{ source('reference', 'icd10_category') }}
),

chapters as (
    select * from {{ source('reference', 'icd10_chapter') }}
),

joined as (
    select
        categories.category as icd10_category,
        categories.title as icd10_category_title,
        categories.chapter_number as icd10_chapter_number,
        chapters.chapter as icd10_chapter,
        chapters.title as icd10_chapter_title,
        concat(chapters.code_from, '-', chapters.code_to) as icd10_chapter_range
    from categories
    inner join chapters
        on categories.chapter_number = chapters.chapter_number
)

select * from joined
