{#- Upload monitoring for the city dashboard: every batch the registry expects (every
    dataset of the organisation's kind, every business date the platform has data for, while
    the organisation is active), whether it was received, on time (the validation's
    batch_on_time result) and corrected (batch version > 1), and how many rows loaded. -#}
{{ config(order_by='(business_date, org_code, dataset)') }}

with

dates as (
    select business_date from {{ ref('stg_dq__business_date_stamp') }}
),

datasets as (
    {%- for name, spec in var('hqlake_datasets').items() %}
    select
        '{{ name }}' as dataset,
        '{{ spec['kind'] }}' as org_kind
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

organizations as (
    select * from {{ ref('dim_organization') }}
),

expected as (
    select
        dates.business_date as business_date,
        organizations.org_code as org_code,
        organizations.org_kind as org_kind,
        organizations.peer_group as peer_group,
        organizations.county_code as county_code,
        datasets.dataset as dataset
    from dates
    cross join organizations
    inner join datasets
        on organizations.org_kind = datasets.org_kind
    where
        organizations.active_from_date <= dates.business_date
        and (
            organizations.active_to_date is null
            or organizations.active_to_date >= dates.business_date
        )
),

batches as (
    select * from {{ ref('stg_dq__batch') }}
),

on_time as (
    select
        org_code,
        dataset,
        business_date,
        anyIf(status, rule_type = 'batch_on_time') as on_time_status
    from {{ ref('stg_dq__current_rule_result') }}
    where rule_type = 'batch_on_time'
    group by org_code, dataset, business_date
),

final as (
    select
        expected.business_date as business_date,
        expected.org_code as org_code,
        expected.org_kind as org_kind,
        expected.peer_group as peer_group,
        expected.county_code as county_code,
        expected.dataset as dataset,
        true as is_expected,
        batches.batch_version is not null as is_received,
        multiIf(
            on_time.on_time_status = 'passed', true,
            on_time.on_time_status = 'failed', false,
            null
        ) as is_on_time,
        batches.batch_version as batch_version,
        ifNull(batches.batch_version > 1, false) as is_corrected,
        batches.files as files,
        batches.rows_read as rows_read,
        batches.rows_loaded as rows_loaded,
        batches.rows_quarantined as rows_quarantined,
        batches.first_received_at as first_received_at,
        batches.last_received_at as last_received_at
    from expected
    left join batches
        on {{ same_keys('expected', 'batches', ['org_code', 'dataset', 'business_date']) }}
    left join on_time
        on {{ same_keys('expected', 'on_time', ['org_code', 'dataset', 'business_date']) }}
)

select * from final
