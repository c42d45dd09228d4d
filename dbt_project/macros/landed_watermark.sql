{#
    The newest landed_at already in this incremental model, as a literal rather than a
    subquery: the planner then sees how few raw rows are newer, and reads just those
    through the landed_at indexes instead of planning for a third of the table.
#}
{% macro landed_watermark() -%}
    {%- if not execute -%}
        {{ return("'-infinity'::timestamptz") }}
    {%- endif -%}
    {%- set newest = run_query(
        "select coalesce(max(landed_at), '-infinity'::timestamptz)::text from " ~ this
    ).columns[0].values()[0] -%}
    {{ return("'" ~ newest ~ "'::timestamptz") }}
{%- endmacro %}
