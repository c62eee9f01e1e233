"""data-products: one Dagster code location publishing a data mesh of domain data products."""
