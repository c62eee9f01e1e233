{#-
    The run's partition range as a SQL predicate on a DATE column. Dagster passes the run's
    first and last day in the environment (DATA_PRODUCTS_DBT_MIN_DATE / _MAX_DATE): unlike
    --vars, a changed environment value does not void dbt's partial parsing, which saves a full
    project parse (~2.5 s) on every run after the first. A hand-run dbt may pass
    --vars '{"min_date": "...", "max_date": "..."}' instead; the project defaults select all
    history. The values are checked here as well as in Dagster because anyone can pass anything.
-#}
{% macro run_date_range(column) -%}
    {%- set min_date = env_var('DATA_PRODUCTS_DBT_MIN_DATE', var('min_date')) | string -%}
    {%- set max_date = env_var('DATA_PRODUCTS_DBT_MAX_DATE', var('max_date')) | string -%}
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
