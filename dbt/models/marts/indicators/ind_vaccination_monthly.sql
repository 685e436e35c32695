{{ config(order_by='(area_level, area_code, period_month, vaccine_code)') }}

with

vaccinations as (
    select
        org_code,
        toStartOfMonth(assumeNotNull(vacc_date)) as period_month,
        ifNull(vaccine_code, '') as vaccine_code,
        dose_no
    from {{ ref('stg_raw__vaccination') }}
    where vacc_date is not null
),

by_county as (
    select
        'county' as area_level,
        org_code as area_code,
        period_month,
        vaccine_code,
        count() as doses,
        countIf(dose_no = 1) as first_doses
    from vaccinations
    group by org_code, period_month, vaccine_code
),

city as (
    select
        'city' as area_level,
        'city' as area_code,
        period_month,
        vaccine_code,
        sum(doses) as doses,
        sum(first_doses) as first_doses
    from by_county
    group by period_month, vaccine_code
),

final as (
    select * from by_county
    union all
    select * from city
)

select * from final
