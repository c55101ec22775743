"""The knowledge base: team leads edit the FAQ answers the bot gives (every street's), staff read them; the bot
reads them on its next answer."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.console.access import admin_required
from app.console.blueprint import bp
from app.core.errors import ValidationFailed
from app.services import knowledge


@bp.get("/knowledge")
def knowledge_page():
    return render_template("console/knowledge.html", articles=knowledge.list_articles(),
                           can_edit=knowledge.may_edit(current_user))


@bp.post("/knowledge/<string:topic>")
@admin_required
def knowledge_update(topic: str):
    title, answer = request.form.get("title", "").strip(), request.form.get("answer", "").strip()
    if not title or not answer:
        raise ValidationFailed("标题和答案都不能为空")
    if len(title) > 100 or len(answer) > 2000:
        raise ValidationFailed("标题最多100字，答案最多2000字")
    knowledge.update_answer(topic=topic, title=title, answer=answer, actor=current_user)
    flash(f"“{title}”已保存，机器人立即使用新答案", "info")
    return redirect(url_for("console.knowledge_page") + f"#faq-{topic}")
