"""Aviation benchmark: the full 2013 year (336,776 flights) bronze → silver → gold with checks,
run three ways on the same landed drops, each in its own process (wall time and peak RSS
measured from outside by ``bench.commerce.measure``; CPU seconds, user + system of the process
and its dbt processes, measured by the child itself, since wall time on a shared machine is
distorted by the others):

- ``single``: the whole year as one single-run backfill (``materialize_slice``: the reference
  snapshots in a run of their own, then the 365 partitions as one run);
- ``per_partition``: a sample of days, each its own run in its own process (what a
  per-partition backfill launches), extrapolated to 365 days; the reference snapshots are
  materialised once beforehand and counted once;
- ``unpartitioned``: the same factories, transforms, contracts and dbt models with no partitions:
  the year's flights and weather landed as one file each, read and written whole, and the dbt
  build over all history (see ``bench.aviation.unpartitioned``).

Target: single <= 1.5 x unpartitioned.
"""
