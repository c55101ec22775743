"""Volume: conversations, tickets and help alerts per Shanghai day, by channel and category.

A "conversation" here is a conversation-day: a resident's thread counts once for each day they wrote in,
because a Conversation row lives for as long as the resident uses the channel.
"""
from __future__ import annotations

from sqlalchemy import func, select

from app.core.extensions import db
from app.models import Conversation, HelpAlert, Ticket
from app.services.reports import rollup
from app.services.reports._sql import in_range, local_day, scoped_resident_ids
from app.services.reports.export import Section
from app.services.tickets import CATEGORY_LABELS

# Tickets without a conversation were opened by staff or by a help alert; they are shown under their source.
NO_CHANNEL = "console"


def report(*, scope) -> dict:
    conversations = _conversation_days(scope)
    tickets = _tickets(scope)
    alerts = _alerts(scope)
    return {
        "days": scope.days,
        "totals": {"conversations": sum(r["count"] for r in conversations),
                   "tickets": sum(r["count"] for r in tickets), "help_alerts": sum(r["count"] for r in alerts)},
        "conversations": conversations, "tickets": tickets, "help_alerts": alerts,
        "category_labels": CATEGORY_LABELS,
    }


def _conversation_days(scope) -> list[dict]:
    days = rollup.conversation_days(scope)  # one row per conversation and day: counting rows counts conversations
    stmt = (select(days.c.day, days.c.channel, func.count().label("n"))
            .group_by(days.c.day, days.c.channel).order_by(days.c.day, days.c.channel))
    return [{"day": r.day.isoformat(), "channel": r.channel, "count": r.n} for r in db.session.execute(stmt)]


def ticket_filter(scope) -> list:
    """The tickets a scope covers: the street's own (tickets carry it), narrowed by the resident's community."""
    conditions = [Ticket.street_id == scope.street_id, in_range(Ticket.created_at, scope)]
    if scope.community_id is not None:
        conditions.append(Ticket.resident_id.in_(scoped_resident_ids(scope)))
    return conditions


def _tickets(scope) -> list[dict]:
    day = local_day(Ticket.created_at)
    channel = func.coalesce(Conversation.channel, NO_CHANNEL)
    stmt = (select(day.label("day"), channel.label("channel"), Ticket.category, func.count().label("n"))
            .outerjoin(Conversation, Conversation.id == Ticket.conversation_id)
            .where(*ticket_filter(scope))
            .group_by(day, channel, Ticket.category).order_by(day, channel, Ticket.category))
    return [{"day": r.day.isoformat(), "channel": r.channel, "category": r.category, "count": r.n}
            for r in db.session.execute(stmt)]


def _alerts(scope) -> list[dict]:
    day = local_day(HelpAlert.created_at)
    stmt = (select(day.label("day"), HelpAlert.source, func.count().label("n"))
            .where(in_range(HelpAlert.created_at, scope), HelpAlert.resident_id.in_(scoped_resident_ids(scope)))
            .group_by(day, HelpAlert.source).order_by(day, HelpAlert.source))
    return [{"day": r.day.isoformat(), "source": r.source, "count": r.n} for r in db.session.execute(stmt)]


def sections(data: dict) -> list[Section]:
    labels = data["category_labels"]
    return [
        Section("合计", ["会话（人·天）", "工单", "一键求助"],
                [[data["totals"]["conversations"], data["totals"]["tickets"], data["totals"]["help_alerts"]]]),
        Section("每日会话", ["日期", "渠道", "会话数"], [[r["day"], r["channel"], r["count"]] for r in data["conversations"]]),
        Section("每日工单", ["日期", "渠道", "类别", "工单数"],
                [[r["day"], r["channel"], labels.get(r["category"], r["category"]), r["count"]]
                 for r in data["tickets"]]),
        Section("每日一键求助", ["日期", "来源", "求助数"], [[r["day"], r["source"], r["count"]] for r in data["help_alerts"]]),
    ]
