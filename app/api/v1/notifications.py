"""Everything Linli sent the resident, on any channel, newest first."""
from __future__ import annotations

from app.api.v1.blueprint import bp
from app.api.v1.guards import auth, current
from app.api.v1.schemas import NotificationsPage, PageQuery
from app.core.pagination import page_query
from app.models import OutboundMessage
from app.services import residents

TAG = "Mobile: notifications"


@bp.get("/notifications")
@bp.auth_required(auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(NotificationsPage)
@bp.doc(summary="Messages sent to the resident (WeChat, SMS), newest first", tags=[TAG], responses=[422])
def notifications(query):
    me = current().resident_id
    page = page_query(residents.notifications_of(resident_id=me), scope=f"notifications:{me}",
                      columns=(OutboundMessage.created_at, OutboundMessage.id), descending=True,
                      cursor=query.get("cursor"), limit=query["limit"])
    return {"notifications": page.items, "next_cursor": page.next_cursor}
