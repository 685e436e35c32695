{#- No row repeats the combination of `columns` (dbt_utils' test without the package: the
    build machine installs no dbt packages from the network). -#}
{% test unique_combination(model, columns) %}

select
    {{ columns | join(', ') }},
    count() as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having occurrences > 1

{% endtest %}
