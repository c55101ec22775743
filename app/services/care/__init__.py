"""Elder care beyond the button: device heartbeats, daily check-in (平安打卡), re-alerts and the watchdog (issue 22).

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
