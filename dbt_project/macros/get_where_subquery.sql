{#
    dbt's hook for the rows a data test reads. With var('recent_rows_hours') set (the
    routine run after ingestion), tests on a table that says when its rows were loaded (a
    source's loaded_at_field, or a model's meta.loaded_at_field) check only the rows loaded
    in that window, the ones this run can have changed, instead of re-reading millions of
    unchanged rows each time. Keys stay unique across all rows regardless: the raw
    tables' primary keys and the incremental marts' unique indexes enforce them. Set to
    null (the nightly build, a full refresh), every row is tested.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- set hours = var('recent_rows_hours') -%}
    {%- set loaded_at = loaded_at_field(relation) if hours and execute else none -%}
    {%- if loaded_at -%}
        {%- set recent = loaded_at ~ " > now() - interval '" ~ (hours | int) ~ " hours'" -%}
        {%- set where = "(" ~ where ~ ") and " ~ recent if where else recent -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return("(select * from " ~ relation ~ " where " ~ where ~ ") dbt_subquery") -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{% macro loaded_at_field(relation) -%}
    {%- for node in graph.sources.values() | list + graph.nodes.values() | list -%}
        {%- if node.relation_name == relation.render() -%}
            {%- do return(node.config.get('loaded_at_field') or node.config.meta.get('loaded_at_field')) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}
