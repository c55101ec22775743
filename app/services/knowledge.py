"""The knowledge base: FAQ answers by topic, edited by team leads and read by the bot."""
from __future__ import annotations

from sqlalchemy import select, update

from app.core.errors import Forbidden, NotFound
from app.core.extensions import db
from app.models import FaqArticle, Staff


def get_answer(*, topic: str) -> FaqArticle:
    """The current answer for a topic, counting the use."""
    article = db.session.scalar(select(FaqArticle).where(FaqArticle.topic == topic))
    if article is None:
        raise NotFound(f"no FAQ answer for topic {topic!r}")
    db.session.execute(update(FaqArticle).where(FaqArticle.id == article.id).values(uses=FaqArticle.uses + 1))
    db.session.commit()
    return article


def list_articles() -> list[FaqArticle]:
    return list(db.session.scalars(select(FaqArticle).order_by(FaqArticle.topic)))


def may_edit(staff: Staff) -> bool:
    # Team leads only: one answer reaches every street's residents through the bot, so it is not any one street's
    # staff member's to rewrite.
    return staff.role == "admin"


def update_answer(*, topic: str, title: str, answer: str, actor: Staff) -> FaqArticle:
    """A team lead edits an answer; the bot sees it on its next fetch, no retraining."""
    if not may_edit(actor):
        raise Forbidden("只有组长可以修改知识库答案")
    article = db.session.scalar(select(FaqArticle).where(FaqArticle.topic == topic))
    if article is None:
        raise NotFound(f"no FAQ answer for topic {topic!r}")
    article.title, article.answer, article.updated_by_id = title, answer, actor.id
    db.session.commit()
    return article


def upsert_articles(*, articles: list[dict]) -> int:
    """Seed or refresh answers from a list of {topic, title, answer}; returns how many were new."""
    existing = {a.topic for a in db.session.scalars(select(FaqArticle))}
    created = 0
    for item in articles:
        if item["topic"] in existing:
            continue
        db.session.add(FaqArticle(topic=item["topic"], title=item["title"], answer=item["answer"]))
        created += 1
    db.session.commit()
    return created
