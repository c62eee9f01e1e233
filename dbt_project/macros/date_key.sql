{#- The integer yyyymmdd key of a date, shared by dim_date and every fact that points at it. -#}
{% macro date_key(column) -%}
    cast(strftime({{ column }}, '%Y%m%d') as integer)
{%- endmacro %}
