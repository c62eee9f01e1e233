{#- Open bounds of SCD2 validity intervals: [valid_from, valid_to), never NULL, so a
    point-in-time join is a plain range predicate. -#}
{% macro scd2_beginning_of_time() -%}
    timestamp '1900-01-01 00:00:00'
{%- endmacro %}

{% macro scd2_end_of_time() -%}
    timestamp '9999-12-31 00:00:00'
{%- endmacro %}
