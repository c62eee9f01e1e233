"""Sensors: freshness/SLA alerting today; stream and CDC micro-batches as domains add them."""
