"""CDC benchmark: changes per second applied to each sink (Iceberg mirror, Delta mirror, SCD2
history) for a 1,000,000-row table, under one 1 % change batch and under a sustained workload,
and the replication lag (p50/p95) of that workload. Runs its own PostgreSQL in a temporary
directory; nothing touches the data home."""
