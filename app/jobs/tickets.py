"""Ticket sweeps the ticker runs: SLA breaches, round-robin offers, closing old resolved tickets."""
from __future__ import annotations

from app.jobs.periodic import every
from app.services import sla, tickets


@every(60)
def flag_sla_breaches() -> int:
    return len(sla.check_breaches())


@every(60)
def offer_unassigned_tickets() -> int:
    return len(tickets.offer_unassigned())


@every(600)
def close_resolved_tickets() -> int:
    return tickets.close_resolved()
