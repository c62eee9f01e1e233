"""Change data capture from PostgreSQL logical decoding into the lake, exactly once.

Modules, one job each: ``lsn`` (LSN text/integer), ``pgoutput`` (protocol decoding),
``source`` (publication, slot, exported-snapshot copy, peek/advance), ``schema`` (types, column
evolution, state), ``frames`` (typed change frames, dedupe), ``sinks`` (Iceberg/Delta mirrors,
SCD2 history), ``pipeline`` (one batch, in order), ``verify`` (consistency and lag),
``timetravel`` (as-of reads).
"""
