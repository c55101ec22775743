"""The bot: how many conversations it finished on its own, how often it handed over or did not
understand, what it was asked without an answer, and which FAQ topics it used.

A conversation is counted per day (a conversation-day): the thread a resident keeps on a channel is
one row for years, but a day of writing is what "finished without a person" can be judged on.
"""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import and_, case, func, select

from app.core.extensions import db
from app.models import FaqArticle, Ticket
from app.services.reports import rollup
from app.services.reports._sql import count_if, in_range, local_day, ratio
from app.services.reports.export import Section, percent
from app.services.reports.unanswered import top_unanswered

FAQ_TOP = 15


def report(*, scope) -> dict:
    s = _sessions(scope)
    return {
        "conversations": s.total,
        "contained": s.total - s.escalated,
        "escalated": s.escalated,
        "handed_off": s.handed_off,
        "containment_rate": ratio(s.total - s.escalated, s.total),
        "handoff_rate": ratio(s.handed_off, s.total),
        "classified_messages": s.classified,
        "fallback_messages": s.fallback,
        # Of the resident messages the bot classified (intent set; none in human mode), the share it fell back on.
        "fallback_rate": ratio(s.fallback, s.classified),
        "unanswered": top_unanswered(scope=scope),
        "faq": _faq(),
    }


def _sessions(scope) -> SimpleNamespace:
    """Conversation-days with resident messages (the rollup plus the live tail, see rollup.py), and those
    on which a ticket was opened for the conversation, with the fallback counts of the same rows.

    Escalated = any ticket that day (a person took over); handed off = the bot itself opened it (source
    "bot": the resident asked it for a person, it kept failing, or it was down).
    """
    talked = rollup.conversation_days(scope)
    ticket_day = local_day(Ticket.created_at)
    opened = (select(Ticket.conversation_id.label("conversation_id"), ticket_day.label("day"),
                     func.max(case((Ticket.source == "bot", 1), else_=0)).label("by_bot"))
              .where(Ticket.conversation_id.is_not(None), Ticket.street_id == scope.street_id,
                     in_range(Ticket.created_at, scope))
              .group_by(Ticket.conversation_id, ticket_day).subquery())
    row = db.session.execute(
        select(func.count().label("total"),
               count_if(opened.c.conversation_id.is_not(None)).label("escalated"),
               count_if(opened.c.by_bot == 1).label("handed_off"),
               func.sum(talked.c.classified).label("classified"), func.sum(talked.c.fallback).label("fallback"))
        .select_from(talked)
        .outerjoin(opened, and_(opened.c.conversation_id == talked.c.conversation_id, opened.c.day == talked.c.day))
    ).one()
    return SimpleNamespace(total=row.total, escalated=row.escalated or 0, handed_off=row.handed_off or 0,
                           classified=int(row.classified or 0), fallback=int(row.fallback or 0))


def _faq() -> list[dict]:
    """FAQ topics by use. `uses` is a lifetime counter shared by all streets, so the filters do not apply."""
    stmt = (select(FaqArticle.topic, FaqArticle.title, FaqArticle.uses)
            .order_by(FaqArticle.uses.desc(), FaqArticle.topic).limit(FAQ_TOP))
    return [{"topic": r.topic, "title": r.title, "uses": r.uses} for r in db.session.execute(stmt)]


def sections(data: dict) -> list[Section]:
    return [
        Section("机器人", ["会话（人·天）", "机器人独立完成", "独立完成率", "转人工", "转人工率", "已识别消息", "未理解消息",
                        "未理解率"],
                [[data["conversations"], data["contained"], percent(data["containment_rate"]), data["handed_off"],
                  percent(data["handoff_rate"]), data["classified_messages"], data["fallback_messages"],
                  percent(data["fallback_rate"])]]),
        Section("未能回答的问题（相似问题合并）", ["问题", "次数", "相似问法", "最近一次(UTC)"],
                [[u["question"], u["count"], " / ".join(u["examples"]), u["last_at"]] for u in data["unanswered"]]),
        Section("常见问题使用次数（累计，不受筛选影响）", ["主题", "标题", "使用次数"],
                [[f["topic"], f["title"], f["uses"]] for f in data["faq"]]),
    ]
