"""Staff accounts: creation (a deployment's first team lead), sign-in with failure budgets, console sessions, and
the on-duty switch that ticket round-robin relies on.

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.staff.accounts import MIN_PASSWORD_LENGTH, create_staff
from app.services.staff.auth import authenticate, close_session, load_staff, open_session, set_on_duty
