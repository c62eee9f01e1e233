"""Workarounds on library internals, one module per library, and nowhere else.

Every module here says why the workaround exists and which version of the library it was
written against (``WRITTEN_AGAINST``); ``tests/lib/test_compat.py`` fails when the installed
version differs, when a private name used here moved or changed its signature, or when the
library's own behaviour that made the workaround necessary has changed. Upgrading a pin means
re-checking the module that names it, not searching the tree.

- ``dagster``: the pooled SQLite instance storage (private storage classes), and an enum
  Dagster does not re-export;
- ``dagster_dbt``: the dbt CLI resource without its serial start-up costs (private methods),
  and the event stream drained without a busy-polling consumer;
- ``dbt_duckdb``: closing the database handle dbt-duckdb caches at class level;
- ``feast``: the configured offline store, which Feast builds only inside its feature store;
- ``environment``: the only place that changes this process's environment, for the libraries
  that read configuration from it and offer no argument.
"""
