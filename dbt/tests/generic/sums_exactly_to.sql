{#- Per group of `group_by`, the column sums exactly (no tolerance: Decimal columns) to
    `total`, which is the same on every row of the group. -#}
{% test sums_exactly_to(model, column_name, total, group_by) %}

select
    {{ group_by | join(', ') }},
    sum({{ column_name }}) as summed,
    min({{ total }}) as total
from {{ model }}
group by {{ group_by | join(', ') }}
having summed != total or min({{ total }}) != max({{ total }})

{% endtest %}
