{#-
    A deterministic BIGINT surrogate key: the first 60 bits of the md5 of the '|'-joined
    natural-key values (NULL spelled out so it differs from the empty string). Hash-based rather
    than row_number() so a key never changes when history grows: incremental facts written
    yesterday still join today's rebuilt dimensions. 60 bits keep the value positive, leaving
    negative numbers for special members (-1 = unknown). Reproducible outside DuckDB:
    int(md5('a|b').hexdigest()[:15], 16).
-#}
{% macro surrogate_key(expressions) -%}
    cast(('0x' || left(md5(concat_ws('|'
        {%- for expression in expressions %}
        , coalesce(cast({{ expression }} as varchar), '<null>')
        {%- endfor %}
    )), 15)) as bigint)
{%- endmacro %}
