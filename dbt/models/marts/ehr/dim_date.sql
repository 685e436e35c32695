{{ config(order_by='(date_day)') }}

with

calendar as (
    select * from {{ ref('stg_reference__calendar') }}
),

final as (
    select
        date_day,
        toYear(date_day) as year_number,
        toQuarter(date_day) as quarter_number,
        toMonth(date_day) as month_number,
        toStartOfMonth(date_day) as month_start_date,
        toISOWeek(date_day) as iso_week_number,
        toDayOfWeek(date_day) as day_of_week,
        toDayOfWeek(date_day) >= 6 as is_weekend,
        is_workday,
        is_holiday,
        holiday_name,
        calendar_note
    from calendar
)

select * from final
