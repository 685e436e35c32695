{#- Every non-null value of the column is a code of `code_system` (contracts/codes.yaml, as
    written to reference.code_value): value domains come from the code tables, not YAML. -#}
{% test in_code_system(model, column_name, code_system) %}

select {{ column_name }} as unknown_code
from {{ model }}
where
    {{ column_name }} is not null
    and toString({{ column_name }}) not in (
        select code
        from {{ source('reference', 'code_value') }}
        where code_system = '{{ code_system }}'
    )

{% endtest %}
