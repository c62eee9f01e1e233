"""The payments domain: card transactions through an event log, consumed in exactly-once
micro-batches into bronze/silver, sliding-window features, fraud alerts and a double-entry ledger
reconciled against daily settlement files."""
