{#- The WHO ICD-10 code inside a national clinical code: 'I10.x00' -> 'I10', 'K80.2' -> 'K80.2'
    (the clinical version appends extension digits after an 'x', contracts/codes.yaml). -#}
{% macro icd10_who_code(expression) -%}
    {{ return(adapter.dispatch('icd10_who_code', 'hqlake')(expression)) }}
{%- endmacro %}

{% macro clickhouse__icd10_who_code(expression) -%}
    replaceRegexpOne(upper(trimBoth(ifNull({{ expression }}, ''))), '\\.?X.*$', '')
{%- endmacro %}

{#- numerator / denominator as a rounded percentage (or plain ratio with scale=1); NULL when
    the denominator is zero or NULL: an indicator without a base is unknown, not zero. -#}
{% macro ratio(numerator, denominator, scale=100, digits=2) -%}
    {{ return(adapter.dispatch('ratio', 'hqlake')(numerator, denominator, scale, digits)) }}
{%- endmacro %}

{% macro clickhouse__ratio(numerator, denominator, scale, digits) -%}
    if(
        ifNull({{ denominator }}, 0) = 0,
        null,
        round(toFloat64({{ numerator }}) * {{ scale }} / toFloat64({{ denominator }}), {{ digits }})
    )
{%- endmacro %}

{#- Completed years of age at `at_date` for a person born on `birth_date`. -#}
{% macro age_in_years(birth_date, at_date) -%}
    {{ return(adapter.dispatch('age_in_years', 'hqlake')(birth_date, at_date)) }}
{%- endmacro %}

{% macro clickhouse__age_in_years(birth_date, at_date) -%}
    (
        toYear({{ at_date }}) - toYear({{ birth_date }})
        - if(
            toMonth({{ at_date }}) * 100 + toDayOfMonth({{ at_date }})
            < toMonth({{ birth_date }}) * 100 + toDayOfMonth({{ birth_date }}),
            1,
            0
        )
    )
{%- endmacro %}
