"""Filters: each answers keep, drop-with-reason, or alter-with-a-counted-reason."""
