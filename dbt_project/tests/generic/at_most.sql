{#- Fails where the column exceeds another column of the same row: a later stage of a
    funnel (replied) can never count more than an earlier one (sent). -#}
{% test at_most(model, column_name, other) %}
select *
from {{ model }}
where {{ column_name }} > {{ other }}
{% endtest %}
