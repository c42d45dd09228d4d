{#
    The newest value of a timestamp column already in this incremental model, as a
    literal ('-infinity' when empty) rather than a subquery: the planner then sees how
    few rows are newer, and reads just those through an index instead of planning for a
    third of the table.
#}
{% macro watermark(column) -%}
    {%- if not execute -%}
        {{ return("'-infinity'::timestamptz") }}
    {%- endif -%}
    {%- set newest = run_query(
        "select coalesce(max(" ~ column ~ "), '-infinity'::timestamptz)::text from " ~ this
    ).columns[0].values()[0] -%}
    {{ return("'" ~ newest ~ "'::timestamptz") }}
{%- endmacro %}
