"""Work orders like a city hotline: departments, dispatch, transfer, return, oversight, follow-up (issue 21).

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
