{#- An equi-join condition on columns both sides name alike:
    same_keys('a', 'b', ['org_code', 'business_date']) ->
    a.org_code = b.org_code and a.business_date = b.business_date -#}
{% macro same_keys(left, right, keys) -%}
    {%- for key in keys -%}
        {{ " and " if not loop.first }}{{ left }}.{{ key }} = {{ right }}.{{ key }}
    {%- endfor -%}
{%- endmacro %}
