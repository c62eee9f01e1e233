{#-
    The run's partition range as a SQL predicate on a DATE column. Dagster passes
    --vars '{"min_date": "...", "max_date": "..."}' (first and last partition key of the run);
    the project defaults select all history. The values are checked here as well as in Dagster
    because a hand-run dbt can pass anything.
-#}
{% macro run_date_range(column) -%}
    {%- set min_date = var('min_date') | string -%}
    {%- set max_date = var('max_date') | string -%}
    {%- for name, value in [('min_date', min_date), ('max_date', max_date)] -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value) -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ "=" ~ value ~ " is not a YYYY-MM-DD date") }}
        {%- endif -%}
    {%- endfor -%}
    {%- if min_date > max_date -%}
        {{ exceptions.raise_compiler_error(
            "var min_date=" ~ min_date ~ " is after max_date=" ~ max_date) }}
    {%- endif -%}
    {{ column }} between date '{{ min_date }}' and date '{{ max_date }}'
{%- endmacro %}
