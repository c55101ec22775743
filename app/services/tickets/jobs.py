"""Ticket sweeps the ticker runs: SLA breaches, round-robin offers, closing old resolved tickets, deleting residents'
photos no request took."""
from __future__ import annotations

from app.core.tasks import job
from app.services.tickets import lifecycle, requests, sla


@job("tickets.flag_sla_breaches", every=60)
def flag_sla_breaches() -> int:
    return len(sla.check_breaches())


@job("tickets.offer_unassigned", every=60)
def offer_unassigned_tickets() -> int:
    return len(lifecycle.offer_unassigned())


@job("tickets.close_resolved", every=600)
def close_resolved_tickets() -> int:
    return lifecycle.close_resolved()


@job("tickets.sweep_unattached_photos", every=3600)
def sweep_unattached_photos() -> int:
    return requests.sweep_unattached_photos()
