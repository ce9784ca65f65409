"""Business logic as plain functions; each owns its transaction."""
