{#- Models holding the latest staged row per key (int_patient_person per hospital patient,
    int_health_record_person per county health record) are incremental by key, not by date:
    a key's latest row may come from any business date, and a late batch of an older date
    may re-send a key (and then win or lose on recency) or, corrected, drop it. So:

    1. the changed business dates are those whose stamp (stg_dq__business_date_stamp) is
       newer than the newest stamp the model was built from (its rows keep
       source_changed_at; a stamp is the time of an ingest or a validation run, so every
       date changed since the last build is newer; a date whose rows all lost on recency
       may be taken again, which recomputes the same rows);
    2. the pre-hooks log in `<model>_changed_keys` the keys staged on a changed date and
       the keys whose model row came from one (an outgoing row: its key may now have an
       older latest row, or none), then delete the logged keys' rows;
    3. the model inserts the latest row of every logged key, read from all of staging;
    4. the post-hook empties the log. A failed build leaves it, and the next build resolves
       those keys again: the log is idempotent.

    A full build (--full-refresh, or the first) computes every key and uses no log. -#}

{% macro changed_keys_log() -%}
    {{ this.schema }}.{{ this.identifier }}_changed_keys
{%- endmacro %}

{#- The changed business dates (a subquery: no date becomes SQL text). -#}
{% macro changed_source_dates() -%}
    select business_date from {{ ref('stg_dq__business_date_stamp') }}
    where source_changed_at > (select max(source_changed_at) from {{ this }})
{%- endmacro %}

{#- The hooks, one statement each (the adapter runs a hook as one statement); they read
    the source and key from the model's meta `latest_by_key`. -#}
{% macro _latest_by_key() -%}
    {{ return(config.get('meta')['latest_by_key']) }}
{%- endmacro %}

{#- A table built before it was incremental has no source_changed_at: it gets one of zero
    times, so the first incremental build finds every date changed and replaces every key. -#}
{% macro add_source_changed_at() -%}
    {%- if is_incremental() -%}
        {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {%- if 'source_changed_at' not in columns -%}
            {%- set staged = adapter.get_columns_in_relation(ref(_latest_by_key()['source']))
                | selectattr('name', 'equalto', 'source_changed_at') | first -%}
            alter table {{ this }} add column source_changed_at {{ staged.data_type }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro create_changed_keys_log() -%}
    {%- if is_incremental() -%}
        create table if not exists {{ changed_keys_log() }}
        engine = MergeTree() order by tuple()
        as select {{ _latest_by_key()['key'] | join(', ') }} from {{ this }} where 0
    {%- endif -%}
{%- endmacro %}

{% macro log_changed_keys() -%}
    {%- if is_incremental() -%}
        {%- set key = _latest_by_key()['key'] -%}
        insert into {{ changed_keys_log() }}
        select {{ key | join(', ') }} from {{ ref(_latest_by_key()['source']) }}
        where business_date in ({{ changed_source_dates() }})
        {%- for column in key %} and {{ column }} is not null{% endfor %}
        union distinct
        select {{ key | join(', ') }} from {{ this }}
        where business_date in ({{ changed_source_dates() }})
    {%- endif -%}
{%- endmacro %}

{% macro delete_changed_keys() -%}
    {%- if is_incremental() -%}
        {%- set key = _latest_by_key()['key'] | join(', ') -%}
        delete from {{ this }}
        where ({{ key }}) in (select {{ key }} from {{ changed_keys_log() }})
    {%- endif -%}
{%- endmacro %}

{#- The config of a latest-by-key model over `source` (a staging model) with `key` columns
    (they may be Nullable, which a sorting key may not be: the model's rows never are). -#}
{% macro incremental_latest_by_key(source, key) -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='append',
        order_by='(ifNull(' ~ key | join(", ''), ifNull(") ~ ", ''))",
        meta={'latest_by_key': {'source': source, 'key': key} },
        pre_hook=[
            "{{ add_source_changed_at() }}",
            "{{ create_changed_keys_log() }}",
            "{{ log_changed_keys() }}",
            "{{ delete_changed_keys() }}",
        ],
        post_hook="truncate table if exists {{ this.schema }}.{{ this.identifier }}_changed_keys",
    ) }}
{%- endmacro %}

{#- The filter of a latest-by-key model's staged rows: the logged keys when incremental. -#}
{% macro changed_keys_filter(key) -%}
    {%- if is_incremental() -%}
        ({{ key | join(', ') }}) in (select {{ key | join(', ') }} from {{ changed_keys_log() }})
    {%- else -%}
        1
    {%- endif -%}
{%- endmacro %}
