{#- The data tests of a build check what the build wrote, not the whole history again.

    A model rebuilt by whole business dates (staging, int_person_evidence, the facts: meta
    `rebuilt_by_business_date`) writes no row of a date outside the dates this build
    rebuilds, so a test that can only fail by a row of the date it is on needs to read those
    dates only: a row test (not_null, accepted_values, in_code_system) and a
    unique_combination whose columns include business_date. Every other test (unique over
    all dates, relationships, whose parent may have changed, tests of models rebuilt in
    full) reads everything, as before.

    The dates are data, not a dbt var (a var that changes every day forces a full re-parse):
    - `<target schema>.build_business_date`, written by on-run-start (`begin_build_scope`):
      the business dates whose stamp (stg_dq__business_date_stamp) differs from the one
      logged in `tested_business_date`, or every date on a full refresh, on the first build,
      or when a model rebuilt by date does not exist yet (it is built from every date);
    - `<target schema>.tested_business_date`, updated by on-run-end (`end_build_scope`) only
      when every node of an unselected build passed: the stamps whose tests passed. A failed
      or partial (--select) build logs nothing, so its dates are tested again next time. -#}

{% macro build_scope_table() -%}
    {{ target.schema }}.build_business_date
{%- endmacro %}

{% macro tested_dates_table() -%}
    {{ target.schema }}.tested_business_date
{%- endmacro %}

{% macro _stamp_relation() -%}
    {%- set node = graph.nodes['model.hqlake.stg_dq__business_date_stamp'] -%}
    {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}

{% macro _every_date_is_rebuilt(stamps) -%}
    {%- if flags.FULL_REFRESH or stamps is none -%}
        {{ return(true) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.config.meta.get('rebuilt_by_business_date') -%}
            {%- if adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) is none -%}
                {{ return(true) }}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}

{% macro begin_build_scope() -%}
    {%- if execute -%}
        {%- for table in [build_scope_table(), tested_dates_table()] -%}
            {%- do run_query(
                "create table if not exists " ~ table ~ " (business_date Date,"
                ~ " source_changed_at DateTime64(3)) engine = MergeTree() order by business_date"
            ) -%}
        {%- endfor -%}
        {%- do run_query("truncate table " ~ build_scope_table()) -%}
        {%- set stamps = _stamp_relation() -%}
        {%- set source_node = graph.sources['source.hqlake.dq.batch'] -%}
        {%- set batches = api.Relation.create(
            database=source_node.database, schema=source_node.schema, identifier=source_node.identifier
        ) -%}
        {%- if stamps is none -%}
            {#- the first build: no stamp yet, end_build_scope logs the stamps it built -#}
            {%- set dates -%}
                select distinct business_date, toDateTime64(0, 3) from {{ batches }}
            {%- endset -%}
        {%- elif _every_date_is_rebuilt(stamps) -%}
            {%- set dates -%}
                select business_date, source_changed_at from {{ stamps }}
            {%- endset -%}
        {%- else -%}
            {%- set dates -%}
                select business_date, source_changed_at from {{ stamps }}
                where (business_date, source_changed_at) not in (
                    select business_date, source_changed_at from {{ tested_dates_table() }}
                )
            {%- endset -%}
        {%- endif -%}
        {%- do run_query("insert into " ~ build_scope_table() ~ " " ~ dates) -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{% macro end_build_scope(results) -%}
    {%- if execute -%}
        {%- set args = invocation_args_dict -%}
        {%- set partial = args.get('select') or args.get('exclude') or args.get('selector') -%}
        {%- set passed = results | rejectattr('status', 'in', ['success', 'pass', 'warn']) | list | length == 0 -%}
        {%- if passed and not partial and results -%}
            {%- do run_query(
                "delete from " ~ tested_dates_table() ~ " where business_date in"
                ~ " (select business_date from " ~ build_scope_table() ~ ")"
            ) -%}
            {%- set stamps = _stamp_relation() -%}
            {%- set logged -%}
                insert into {{ tested_dates_table() }}
                select business_date, source_changed_at from {{ build_scope_table() }}
                where source_changed_at > toDateTime64(0, 3)
                union all
                select business_date, source_changed_at from {{ stamps }}
                where business_date in (
                    select business_date from {{ build_scope_table() }}
                    where source_changed_at = toDateTime64(0, 3)
                )
            {%- endset -%}
            {%- do run_query(logged) -%}
        {%- endif -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- dbt wraps the model a generic test reads in get_where_subquery: the test's own `where`
    config, and the build's dates for a test that can fail only by a row of the business
    date it is on, on a model rebuilt by whole business dates. Self-contained: a test's
    macro namespace holds only the macros it depends on. -#}
{% macro clickhouse__get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- if config.get('where') -%}
        {%- do filters.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- set metadata = model.get('test_metadata') or {} -%}
    {%- set kind = metadata.get('name') -%}
    {%- set columns = (metadata.get('kwargs') or {}).get('columns') or [] -%}
    {%- set parent = graph.nodes.get(model.get('attached_node') or '') if execute else none -%}
    {%- set by_date = parent is not none
        and (parent.get('config', {}).get('meta') or {}).get('rebuilt_by_business_date') -%}
    {%- set row_test = kind in ['not_null', 'accepted_values', 'in_code_system']
        or (kind == 'unique_combination' and 'business_date' in columns) -%}
    {%- if by_date and row_test -%}
        {%- do filters.append(
            'business_date in (select business_date from ' ~ target.schema ~ '.build_business_date)'
        ) -%}
    {%- endif -%}
    {%- if filters -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ filters | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
