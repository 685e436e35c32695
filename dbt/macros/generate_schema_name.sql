{#- A folder's `+schema` is the ClickHouse database itself (staging, ehr, indicators, ...),
    not dbt's default "<target schema>_<custom>": BI tools see stable database names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
