{#-
    Incremental strategy `replace_range`: delete the run's date range from the target, then
    insert the freshly computed rows for that range, in the one transaction dbt-duckdb's
    incremental materialization wraps around the main statement. Unlike `delete+insert` (which
    deletes only keys present in the new rows) a day that now has no rows is emptied too, so a
    partition re-run replaces exactly its days. The model names the DATE column in
    `meta.partition_column` and must filter its own rows with run_date_range() on that column.
-#}
{% macro get_incremental_replace_range_sql(arg_dict) -%}
    {%- set partition_column = config.get('meta', {}).get('partition_column') -%}
    {%- if not partition_column -%}
        {{ exceptions.raise_compiler_error(
            "model " ~ model.unique_id ~ " uses incremental_strategy='replace_range' "
            ~ "but sets no meta.partition_column") }}
    {%- endif -%}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target_relation }}
    where {{ run_date_range(adapter.quote(partition_column)) }};

    insert into {{ target_relation }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }}
    from {{ arg_dict['temp_relation'] }}
{%- endmacro %}
