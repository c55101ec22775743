"""One-key help from the app: contact chains (the resident's own, or of relatives who authorised them),
alert history, and the family members a resident authorises."""
from __future__ import annotations

from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, current, idempotent
from app.api.v1.schemas import (
    AlertsPage,
    ChainIn,
    ChainOut,
    DelegateEnvelope,
    DelegateIn,
    DelegatesOut,
    ManagedListOut,
    PageQuery,
)
from app.core.pagination import page_query
from app.models import HelpAlert
from app.services import help as help_service

TAG = "Mobile: help"
PERSON = "/help/residents/<int:resident_id>"


@bp.get("/help/residents")
@bp.auth_required(auth)
@bp.output(ManagedListOut)
@bp.doc(summary="Whose help the resident manages: themself, then relatives who authorised them", tags=[TAG])
def managed():
    me = current().resident_id
    return {"residents": [{"id": r.id, "name": r.name, "is_self": r.id == me}
                          for r in help_service.manageable(actor_id=me)]}


@bp.get(f"{PERSON}/contacts")
@bp.auth_required(auth)
@bp.output(ChainOut)
@bp.doc(summary="The contact chain, in calling order", tags=[TAG], responses=[404])
def chain(resident_id: int):
    return {"contacts": help_service.contacts(actor_id=current().resident_id, resident_id=resident_id)}


@bp.put(f"{PERSON}/contacts")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(ChainIn, arg_name="body")
@bp.output(ChainOut)
@bp.doc(summary="Replace the whole chain, in calling order (ids keep a contact's history)", tags=[TAG],
        responses=[404, 422])
def replace_chain(resident_id: int, body):
    return {"contacts": help_service.replace_contacts(actor_id=current().resident_id, resident_id=resident_id,
                                                       contacts=body["contacts"])}


@bp.get(f"{PERSON}/alerts")
@bp.auth_required(auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(AlertsPage)
@bp.doc(summary="The resident's help alerts, newest first", tags=[TAG], responses=[404, 422])
def alerts(resident_id: int, query):
    page = page_query(help_service.alerts_of(actor_id=current().resident_id, resident_id=resident_id),
                      scope=f"alerts:{resident_id}", columns=(HelpAlert.created_at, HelpAlert.id), descending=True,
                      cursor=query.get("cursor"), limit=query["limit"])
    return {"alerts": [{**_alert(a), "accepted_by": help_service.accepted_by(a)} for a in page.items],
            "next_cursor": page.next_cursor}


@bp.get("/help/delegates")
@bp.auth_required(auth)
@bp.output(DelegatesOut)
@bp.doc(summary="Family members the resident authorised to manage their help", tags=[TAG])
def delegates():
    return {"delegates": help_service.delegates(resident_id=current().resident_id)}


@bp.post("/help/delegates")
@bp.auth_required(auth)
@idempotent(bp)
@bp.input(DelegateIn, arg_name="body")
@bp.output(DelegateEnvelope, status_code=201)
@bp.doc(summary="Authorise a family member by phone (they sign in with that phone)", tags=[TAG],
        responses=[409, 422])
def add_delegate(body):
    return {"delegate": help_service.add_delegate(resident_id=current().resident_id, **body)}


@bp.delete("/help/delegates/<int:delegate_id>")
@bp.auth_required(auth)
@idempotent(bp)
@bp.output({}, status_code=204)
@bp.doc(summary="Withdraw a family member's authorisation", tags=[TAG], responses=[404])
def remove_delegate(delegate_id: int):
    help_service.remove_delegate(resident_id=current().resident_id, delegate_id=delegate_id)
    return ""


def _alert(alert: HelpAlert) -> dict:
    return {k: getattr(alert, k) for k in ("id", "status", "source", "created_at", "accepted_at", "resolved_at",
                                           "outcome")}
