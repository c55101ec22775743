"""Housekeeping: expired records that only take space (its jobs only)."""
