with

source as (
    select * from {{ source('reference', 'calendar') }}
),

renamed as (
    select
        date_day,
        is_workday = 1 as is_workday,
        is_holiday = 1 as is_holiday,
        holiday_name,
        calendar_note
    from source
)

select * from renamed
