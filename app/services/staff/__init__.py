"""Staff accounts: sign-in with lockout, and the on-duty switch that ticket round-robin relies on.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.staff.auth import authenticate, load_staff, set_on_duty
