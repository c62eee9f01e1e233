"""Domain assets, one sub-package per domain; discovered by ``data_products.definitions``."""
