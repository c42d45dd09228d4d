{#- Fails where the parts (columns) do not sum to the total column: every booking must
    land in exactly one outcome bucket. -#}
{% test counts_add_up(model, column_name, parts) %}
select *
from {{ model }}
where {{ column_name }} <> {{ parts | join(' + ') }}
{% endtest %}
