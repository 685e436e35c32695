{#- Public-health indicators (基本公共卫生) per county platform and month, year to date, with
    city totals. Counts are summed over counties; rates are computed from the sums. -#}
{{ config(order_by='(area_level, area_code, period_month)') }}
{%- set min_age = var('elderly_min_age') -%}

with

counties as (
    select org_code
    from {{ ref('dim_organization') }}
    where org_kind = 'county'
),

patients as (
    select * from {{ ref('int_public_health_patient_ytd') }}
),

checks as (
    select
        org_code,
        record_id,
        toStartOfMonth(check_date) as check_month
    from {{ ref('stg_raw__elderly_check') }}
    where check_date is not null and record_id is not null
),

records as (
    select * from {{ ref('int_health_record_person') }}
),

vaccinations as (
    select
        org_code,
        toStartOfMonth(vacc_date) as period_month,
        count() as vaccination_doses
    from {{ ref('stg_raw__vaccination') }}
    where vacc_date is not null
    group by org_code, period_month
),

deaths as (
    select
        org_code,
        toStartOfMonth(death_date) as period_month,
        count() as deaths
    from {{ ref('stg_raw__death_registration') }}
    where death_date is not null
    group by org_code, period_month
),

data_months as (
    select period_month from {{ ref('int_chronic_followup_monthly') }}
    union all
    select check_month as period_month from checks
    union all
    select period_month from vaccinations
    union all
    select period_month from deaths
),

months as (
    select distinct month_start_date as period_month
    from {{ ref('dim_date') }}
    where
        month_start_date >= (select min(data_months.period_month) from data_months)
        and month_start_date <= (select max(data_months.period_month) from data_months)
),

spine as (
    select
        counties.org_code as org_code,
        months.period_month as period_month
    from counties
    cross join months
),

chronic as (
    select
        org_code,
        as_of_month as period_month,
        countIf(disease_code = 'I10') as hypertension_managed,
        countIf(disease_code = 'I10' and is_standard_managed) as hypertension_standard_managed,
        countIf(disease_code = 'I10' and is_controlled_latest) as hypertension_controlled,
        countIf(disease_code = 'E11') as diabetes_managed,
        countIf(disease_code = 'E11' and is_standard_managed) as diabetes_standard_managed,
        countIf(disease_code = 'E11' and is_controlled_latest) as diabetes_controlled
    from patients
    group by org_code, as_of_month
),

elderly_checked as (
    select
        spine.org_code as org_code,
        spine.period_month as period_month,
        uniqExact(checks.record_id) as elderly_checked
    from spine
    inner join checks
        on spine.org_code = checks.org_code
    where
        toYear(checks.check_month) = toYear(spine.period_month)
        and checks.check_month <= spine.period_month
    group by spine.org_code, spine.period_month
),

elderly_residents as (
    -- residents with a health record in management (status 1) created by the month's end,
    -- aged {{ min_age }} or more by the end of the year
    select
        spine.org_code as org_code,
        spine.period_month as period_month,
        count() as elderly_residents
    from spine
    inner join records
        on spine.org_code = records.org_code
    where
        records.record_status_code = '1'
        and records.created_date <= toLastDayOfMonth(spine.period_month)
        and records.birth_date <= makeDate32(toYear(spine.period_month) - {{ min_age }}, 12, 31)
    group by spine.org_code, spine.period_month
),

by_county as (
    select
        spine.org_code as org_code,
        spine.period_month as period_month,
        ifNull(chronic.hypertension_managed, 0) as hypertension_managed,
        ifNull(chronic.hypertension_standard_managed, 0) as hypertension_standard_managed,
        ifNull(chronic.hypertension_controlled, 0) as hypertension_controlled,
        ifNull(chronic.diabetes_managed, 0) as diabetes_managed,
        ifNull(chronic.diabetes_standard_managed, 0) as diabetes_standard_managed,
        ifNull(chronic.diabetes_controlled, 0) as diabetes_controlled,
        ifNull(elderly_residents.elderly_residents, 0) as elderly_residents,
        ifNull(elderly_checked.elderly_checked, 0) as elderly_checked,
        ifNull(vaccinations.vaccination_doses, 0) as vaccination_doses,
        ifNull(deaths.deaths, 0) as deaths
    from spine
    left join chronic
        on spine.org_code = chronic.org_code and spine.period_month = chronic.period_month
    left join elderly_residents
        on {{ same_keys('spine', 'elderly_residents', ['org_code', 'period_month']) }}
    left join elderly_checked
        on {{ same_keys('spine', 'elderly_checked', ['org_code', 'period_month']) }}
    left join vaccinations
        on {{ same_keys('spine', 'vaccinations', ['org_code', 'period_month']) }}
    left join deaths
        on spine.org_code = deaths.org_code and spine.period_month = deaths.period_month
),

levels as (
    select
        'county' as area_level,
        org_code as area_code,
        *
    from by_county

    union all

    select
        'city' as area_level,
        'city' as area_code,
        cast(null as Nullable(String)) as org_code,
        period_month,
        sum(hypertension_managed) as hypertension_managed,
        sum(hypertension_standard_managed) as hypertension_standard_managed,
        sum(hypertension_controlled) as hypertension_controlled,
        sum(diabetes_managed) as diabetes_managed,
        sum(diabetes_standard_managed) as diabetes_standard_managed,
        sum(diabetes_controlled) as diabetes_controlled,
        sum(elderly_residents) as elderly_residents,
        sum(elderly_checked) as elderly_checked,
        sum(vaccination_doses) as vaccination_doses,
        sum(deaths) as deaths
    from by_county
    group by period_month
),

final as (
    select
        area_level,
        area_code,
        org_code,
        period_month,
        hypertension_managed,
        hypertension_standard_managed,
        {{ ratio('hypertension_standard_managed', 'hypertension_managed') }}
            as hypertension_standard_management_rate_pct,
        hypertension_controlled,
        {{ ratio('hypertension_controlled', 'hypertension_managed') }}
            as hypertension_control_rate_pct,
        diabetes_managed,
        diabetes_standard_managed,
        {{ ratio('diabetes_standard_managed', 'diabetes_managed') }}
            as diabetes_standard_management_rate_pct,
        diabetes_controlled,
        {{ ratio('diabetes_controlled', 'diabetes_managed') }} as diabetes_control_rate_pct,
        elderly_residents,
        elderly_checked,
        {{ ratio('elderly_checked', 'elderly_residents') }} as elderly_check_coverage_pct,
        vaccination_doses,
        deaths
    from levels
)

select * from final
