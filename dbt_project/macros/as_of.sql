{# The evaluation moment: var('as_of') when given (tests, backfills), else now(). #}
{% macro as_of() -%}
    {%- if var('as_of') -%} '{{ var("as_of") }}'::timestamptz {%- else -%} now() {%- endif -%}
{%- endmacro %}
