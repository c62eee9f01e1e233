{#-
    The folder decides the schema, the same rule the Dagster translator uses for asset keys:
    models/marts/<domain>/<model> is written to <domain>_gold.<model>, so asset key
    [<domain>, gold, <model>] and table name always agree. An explicit `schema` config wins
    verbatim (dbt's default would prefix it with the target schema).
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is not none -%}
        {{ custom_schema_name | trim }}
    {%- elif node.fqn | length == 4 and node.fqn[1] == 'marts' -%}
        {{ node.fqn[2] }}_gold
    {%- else -%}
        {{ target.schema }}
    {%- endif -%}
{%- endmacro %}
