{#- Public-health management and control rates of every county platform against the
    targets in var county_targets: one row per county, month (year to date) and indicator. -#}
{{ config(order_by='(org_code, period_month, indicator_code)') }}
{%- set targets = var('county_targets') -%}
{%- set measures = [
    ('hypertension_standard_management_rate', 'hypertension_standard_managed', 'hypertension_managed'),
    ('diabetes_standard_management_rate', 'diabetes_standard_managed', 'diabetes_managed'),
    ('hypertension_control_rate', 'hypertension_controlled', 'hypertension_managed'),
    ('diabetes_control_rate', 'diabetes_controlled', 'diabetes_managed'),
    ('elderly_check_coverage', 'elderly_checked', 'elderly_residents'),
] -%}

with

indicators as (
    select * from {{ ref('ind_public_health_monthly') }}
    where area_level = 'county'
),

unpivoted as (
    {%- for code, numerator, denominator in measures if code in targets %}
    select
        area_code as org_code,
        period_month,
        '{{ code }}' as indicator_code,
        toUInt64({{ numerator }}) as numerator,
        toUInt64({{ denominator }}) as denominator,
        {{ code }}_pct as value_pct,
        toFloat64({{ targets[code] }}) as target_pct
    from indicators
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

counties as (
    select
        org_code,
        org_name
    from {{ ref('dim_organization') }}
),

final as (
    select
        unpivoted.org_code as org_code,
        counties.org_name as org_name,
        unpivoted.period_month as period_month,
        unpivoted.indicator_code as indicator_code,
        unpivoted.numerator as numerator,
        unpivoted.denominator as denominator,
        unpivoted.value_pct as value_pct,
        unpivoted.target_pct as target_pct,
        round(unpivoted.value_pct - unpivoted.target_pct, 2) as gap_pct_points,
        unpivoted.value_pct >= unpivoted.target_pct as meets_target
    from unpivoted
    left join counties
        on unpivoted.org_code = counties.org_code
)

select * from final
