"""Ticket sweeps the ticker runs: SLA breaches, round-robin offers, closing old resolved tickets."""
from __future__ import annotations

from app.core.tasks import job
from app.services.tickets import lifecycle, sla


@job("tickets.flag_sla_breaches", every=60)
def flag_sla_breaches() -> int:
    return len(sla.check_breaches())


@job("tickets.offer_unassigned", every=60)
def offer_unassigned_tickets() -> int:
    return len(lifecycle.offer_unassigned())


@job("tickets.close_resolved", every=600)
def close_resolved_tickets() -> int:
    return lifecycle.close_resolved()
