{#- Incremental models are rebuilt by whole business dates. A business date is stale when
    its stamp (latest batch ingested, latest validation run: stg_dq__business_date_stamp)
    differs from the stamp its rows in the model were built from, or it has no rows yet.
    The pre-hook deletes the stale dates' rows, the model inserts them again from the current
    batch versions: a re-run inserts nothing, and a corrected batch (new version) or a new
    validation run replaces its date, so rows are never duplicated, and a date whose rows
    all disappear (a correction to an empty batch) is emptied too. -#}

{% macro stale_business_dates() -%}
    {#- referenced before any early return so that parsing records the dependency -#}
    {%- set stamps = ref('stg_dq__business_date_stamp') -%}
    {%- if not execute or not is_incremental() -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select toString(stamp.business_date) as business_date
        from {{ stamps }} as stamp
        where (stamp.business_date, stamp.source_changed_at) not in (
            select distinct built.business_date, built.source_changed_at
            from {{ this }} as built
        )
        order by stamp.business_date
    {%- endset -%}
    {%- set dates = [] -%}
    {%- for row in run_query(query).rows -%}
        {%- do dates.append(row[0]) -%}
    {%- endfor -%}
    {{ return(dates) }}
{%- endmacro %}

{#- A filter on `column` to the stale dates when incremental; true on a full build. `dates`:
    the stale dates when the model already has them (each lookup is a query). -#}
{% macro stale_business_date_filter(column, dates=none) -%}
    {%- set dates = stale_business_dates() if dates is none else dates -%}
    {%- if is_incremental() -%}
        {%- if dates -%}
            {{ column }} in ({{ date_list(dates) }})
        {%- else -%}
            0
        {%- endif -%}
    {%- else -%}
        1
    {%- endif -%}
{%- endmacro %}

{% macro delete_stale_business_dates() -%}
    {%- if is_incremental() -%}
        {%- set dates = stale_business_dates() -%}
        {%- if dates -%}
            delete from {{ this }} where business_date in ({{ date_list(dates) }})
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- `toDate('…'), …` of business dates (the tests read the built dates back from it). -#}
{% macro date_list(dates) -%}
    {%- for d in dates %}toDate('{{ d }}'){{ ", " if not loop.last }}{% endfor -%}
{%- endmacro %}

{#- The config of a model rebuilt by whole business dates: appended, partitioned by the
    business date's month, its stale dates deleted first (after the model's own `pre_hook`);
    its data tests read the build's dates only where that keeps their meaning
    (macros/build_scope.sql). -#}
{% macro incremental_by_business_date(order_by, pre_hook=[]) -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='append',
        order_by=order_by,
        partition_by='toYYYYMM(business_date)',
        pre_hook=pre_hook + ["{{ delete_stale_business_dates() }}"],
        meta={'rebuilt_by_business_date': true},
    ) }}
{%- endmacro %}

{#- The rows of `model` on the stale business dates (every row on a full build). -#}
{% macro stale_rows(model) -%}
    select * from {{ ref(model) }}
    where {{ stale_business_date_filter('business_date') }}
{%- endmacro %}
