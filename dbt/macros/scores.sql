{#- Scores computed in SQL follow the rule of the daily scores and ranks
    (expectations/scoring/arithmetic.py): exact arithmetic on the decimal form of each stored
    Float64 score (toString gives the shortest form that reads back the same, as Python's
    repr) and rounding half up to var('ranking_decimals'), which infra/dbtrun.py passes from
    contracts/scoring.yaml. Not round(avg(x), 2): an avg() of Float64 depends on the order the
    rows arrive in, and round() rounds the binary value (the mean of 81.87 and 83.70 is
    82.785, its Float64 average 82.78499... rounds to 82.78, half up gives 82.79).
    Decimal256 with 40 decimals holds every stored score at or above 1e-23 exactly. -#}

{#- The mean of the scores in `expression` that are not NULL, rounded half up; NULL when
    there are none. -#}
{% macro mean_score(expression) -%}
    {{ return(adapter.dispatch('mean_score', 'hqlake')(expression)) }}
{%- endmacro %}

{% macro clickhouse__mean_score(expression) -%}
    {{ clickhouse__half_up(
        'sum(' ~ clickhouse__exact_score(expression) ~ ') / nullIf(count(' ~ expression ~ '), 0)'
    ) }}
{%- endmacro %}

{#- One stored score rounded half up on its decimal form, as scoring ranks a day. -#}
{% macro rounded_score(expression) -%}
    {{ return(adapter.dispatch('rounded_score', 'hqlake')(expression)) }}
{%- endmacro %}

{% macro clickhouse__rounded_score(expression) -%}
    {{ clickhouse__half_up(clickhouse__exact_score(expression)) }}
{%- endmacro %}

{% macro clickhouse__exact_score(expression) -%}
    toDecimal256(toString({{ expression }}), 40)
{%- endmacro %}

{#- An exact decimal rounded half up, back to Float64 through its text (a Decimal256
    converts to the nearest Float64 only that way: toFloat64 of 2.68 gives 2.6799999...). -#}
{% macro clickhouse__half_up(decimal) -%}
    {%- set decimals = var('ranking_decimals') | int -%}
    {%- set half = '0.' ~ '0' * decimals ~ '5' -%}
    toFloat64(toString(floor({{ decimal }} + toDecimal256('{{ half }}', 40), {{ decimals }})))
{%- endmacro %}
