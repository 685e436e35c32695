{#- The contract of a dataset, as handed over by infra/dbtrun.py (var hqlake_datasets). -#}
{% macro dataset_spec(dataset) -%}
    {%- set spec = var('hqlake_datasets', {}).get(dataset) -%}
    {%- if execute and not spec -%}
        {{ exceptions.raise_compiler_error(
            "no contract for dataset '" ~ dataset ~ "' in var hqlake_datasets; run through `hqlake build`"
        ) }}
    {%- endif -%}
    {{ return(spec or {'key': [], 'fields': [], 'pii': {}}) }}
{%- endmacro %}

{#- The dataset's key fields as one string, as validation writes it to dq.record_issue:
    each key field cast to String, NULL as '', joined by '|'. -#}
{% macro record_key(dataset, alias) -%}
    {%- set parts = [] -%}
    {%- for key in dataset_spec(dataset)['key'] -%}
        {%- do parts.append("ifNull(toString(" ~ alias ~ "." ~ adapter.quote(key) ~ "), '')") -%}
    {%- endfor -%}
    {%- if parts | length == 1 -%}
        {{ parts[0] }}
    {%- else -%}
        concat({{ parts | join(", '|', ") }})
    {%- endif -%}
{%- endmacro %}

{#- The rows of one dataset that staging keeps, before renaming:
    - only the current version of every batch (raw.current_batch);
    - rows with a failing blocking rule in the date's current validation run are left out,
      failing warning rules are listed in dq_warning_rules;
    - contract fields tagged pii come out hashed or masked (`protected_column`), never raw;
    - one row per record key and batch (the last line wins if a key repeats);
    - incremental builds read only the stale business dates: of the batches, of the raw
      rows and of the record issues (each filtered by its own business_date, so that
      partitions and primary keys prune the history). -#}
{% macro staged_records(dataset) -%}
    {%- set spec = dataset_spec(dataset) -%}
    {%- set stale = stale_business_dates() -%}
with

batches as (
    select
        current_batch.org_code,
        current_batch.business_date,
        current_batch.batch_version
    from {{ source('raw', 'current_batch') }} as current_batch
    where
        current_batch.dataset = '{{ dataset }}'
        and {{ stale_business_date_filter('current_batch.business_date', stale) }}
),

stamps as (
    select
        business_date,
        dq_run_id,
        source_changed_at
    from {{ ref('stg_dq__business_date_stamp') }}
),

issues as (
    select
        record_issue.org_code,
        record_issue.business_date,
        record_issue.batch_version,
        record_issue.record_key,
        max(record_issue.severity = 'blocking') as is_blocked,
        arraySort(groupUniqArrayIf(record_issue.rule_id, record_issue.severity != 'blocking'))
            as dq_warning_rules
    from {{ source('dq', 'record_issue') }} as record_issue
    inner join stamps
        on
            record_issue.run_id = stamps.dq_run_id
            and record_issue.business_date = stamps.business_date
    where
        record_issue.dataset = '{{ dataset }}'
        and {{ stale_business_date_filter('record_issue.business_date', stale) }}
    group by
        record_issue.org_code,
        record_issue.business_date,
        record_issue.batch_version,
        record_issue.record_key
),

current_rows as (
    select
        {{ record_key(dataset, 'raw_rows') }} as record_key,
        raw_rows.*
    from {{ source('raw', dataset) }} as raw_rows
    where
        {{ stale_business_date_filter('raw_rows.business_date', stale) }}
        and (raw_rows.org_code, raw_rows.business_date, raw_rows.batch_version) in (
            select
                org_code,
                business_date,
                batch_version
            from batches
        )
),

protected as (
    select
        {%- for field in spec['fields'] %}
        {{ protected_column(field, spec['pii'].get(field), 'current_rows') }},
        {%- endfor %}
        current_rows.record_key as record_key,
        current_rows.org_code as org_code,
        current_rows.business_date as business_date,
        current_rows.batch_version as batch_version,
        current_rows.source_file as source_file,
        current_rows.source_line as source_line,
        current_rows.received_at as received_at,
        ifNull(issues.is_blocked, 0) = 1 as is_blocked,
        issues.dq_warning_rules as dq_warning_rules,
        stamps.dq_run_id as dq_run_id,
        stamps.source_changed_at as source_changed_at
    from current_rows
    left join issues
        on {{ same_keys(
            'current_rows', 'issues', ['org_code', 'business_date', 'batch_version', 'record_key']
        ) }}
    left join stamps
        on current_rows.business_date = stamps.business_date
)

select
    * except (is_blocked),
    notEmpty(dq_warning_rules) as has_dq_warning
from protected
where not is_blocked
order by org_code asc, business_date asc, record_key asc, source_file desc, source_line desc
limit 1 by org_code, business_date, record_key
{%- endmacro %}

{#- Lineage and quality columns every staging model ends with. -#}
{% macro staging_lineage() -%}
        record_key,
        business_date,
        batch_version,
        source_file,
        source_line,
        received_at,
        dq_warning_rules,
        has_dq_warning,
        dq_run_id,
        source_changed_at
{%- endmacro %}
