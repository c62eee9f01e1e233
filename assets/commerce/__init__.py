"""The commerce domain: messy daily order drops → typed 3NF silver → dbt star schema and marts."""
