"""Domain services: every business rule lives here, one module per domain."""
