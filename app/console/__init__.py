"""The staff console (/console): server-rendered pages for the street office's staff, CSRF on every form."""
from app.console import (  # noqa: F401  (each module adds its routes to `bp`)
    access,
    appointments,
    auth,
    help_board,
    help_chains,
    knowledge,
    queue,
    reports,
    simulator,
    team,
    ticket_detail,
    workorders,
)
from app.console.blueprint import bp  # noqa: F401
