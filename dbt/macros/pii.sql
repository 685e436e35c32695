{#- Personal identifiers never leave staging in clear: the contracts tag them (`pii`), and
    `protected_column` replaces each by a salted hash (identity numbers, phones) or a mask
    (names). The salt comes from the environment (HQLAKE_PII_SALT), never from the repo. -#}

{% macro pii_salt() -%}
    {%- set salt = env_var('HQLAKE_PII_SALT', '') -%}
    {%- if execute and not salt -%}
        {{ exceptions.raise_compiler_error("HQLAKE_PII_SALT is not set; run through `hqlake build`") }}
    {%- endif -%}
    {{ return(salt) }}
{%- endmacro %}

{% macro sql_string(value) -%}
    '{{ value | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{% macro hash_pii(expression) -%}
    {{ return(adapter.dispatch('hash_pii', 'hqlake')(expression)) }}
{%- endmacro %}

{% macro clickhouse__hash_pii(expression) -%}
    if(
        empty(trimBoth(ifNull({{ expression }}, ''))),
        null,
        lower(hex(SHA256(concat({{ sql_string(pii_salt()) }}, upper(trimBoth({{ expression }}))))))
    )
{%- endmacro %}

{% macro mask_name(expression) -%}
    {{ return(adapter.dispatch('mask_name', 'hqlake')(expression)) }}
{%- endmacro %}

{% macro clickhouse__mask_name(expression) -%}
    if(
        empty(trimBoth(ifNull({{ expression }}, ''))),
        null,
        concat(substringUTF8(trimBoth({{ expression }}), 1, 1), '*')
    )
{%- endmacro %}

{#- Birth date and sex carried by an 18-character resident identity number (GB 11643), kept
    beside its hash so persons known only by number still get demographics. -#}
{% macro resident_id_birth_date(expression) -%}
    {{ return(adapter.dispatch('resident_id_birth_date', 'hqlake')(expression)) }}
{%- endmacro %}

{% macro clickhouse__resident_id_birth_date(expression) -%}
    if(
        match(ifNull({{ expression }}, ''), '^[0-9]{17}[0-9Xx]$'),
        toDate32OrNull(concat(
            substring({{ expression }}, 7, 4), '-',
            substring({{ expression }}, 11, 2), '-',
            substring({{ expression }}, 13, 2)
        )),
        null
    )
{%- endmacro %}

{% macro resident_id_sex_code(expression) -%}
    {{ return(adapter.dispatch('resident_id_sex_code', 'hqlake')(expression)) }}
{%- endmacro %}

{% macro clickhouse__resident_id_sex_code(expression) -%}
    if(
        match(ifNull({{ expression }}, ''), '^[0-9]{17}[0-9Xx]$'),
        if(toUInt8(substring({{ expression }}, 17, 1)) % 2 = 1, '1', '2'),
        null
    )
{%- endmacro %}

{#- The select-list entries for one contract field: as is, or protected by its pii tag. -#}
{% macro protected_column(field, pii_kind, alias) -%}
    {%- set source = alias ~ '.' ~ adapter.quote(field) -%}
    {%- if pii_kind == 'identity' -%}
        {{ hash_pii(source) }} as {{ field }}_hash,
        {{ resident_id_birth_date(source) }} as {{ field }}_birth_date,
        {{ resident_id_sex_code(source) }} as {{ field }}_sex_code
    {%- elif pii_kind == 'phone' -%}
        {{ hash_pii(source) }} as {{ field }}_hash
    {%- elif pii_kind == 'name' -%}
        {{ mask_name(source) }} as {{ field }}_masked
    {%- elif pii_kind -%}
        {{ exceptions.raise_compiler_error("no protection for pii kind '" ~ pii_kind ~ "' of " ~ field) }}
    {%- else -%}
        {{ source }} as {{ field }}
    {%- endif -%}
{%- endmacro %}

{#- A list of strings as a SQL tuple of string literals: ('a', 'b'). -#}
{% macro sql_tuple(values) -%}
    {%- if execute and not values -%}
        {{ exceptions.raise_compiler_error("empty value list") }}
    {%- endif -%}
    ({% for v in values or [''] %}{{ sql_string(v) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
