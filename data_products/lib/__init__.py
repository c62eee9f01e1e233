"""Platform mechanisms shared by every domain: settings, key grammar, partitions, contracts,
quarantine, table writes, lineage and freshness. Domains call these; they never re-implement
them."""
