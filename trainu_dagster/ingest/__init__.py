"""Getting GHL data in: webhook receiver, landing, apply-to-raw, dead-letter queue."""
