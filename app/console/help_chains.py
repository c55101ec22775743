"""Help chains in the console: the street's elderly residents, and one page per resident to edit who is called,
in which order, through which channels. Saving goes through `help_service.replace_chain` (the rules live there)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app.console.blueprint import bp
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.models import Community, HelpContact, HelpDevice, Resident
from app.models.help import ATTEMPT_CHANNELS, CONTACT_RELATIONS
from app.services import help as help_service

RELATION_LABELS = {"family": "家属", "neighbour": "邻居", "grid_worker": "网格员", "staff": "街道工作人员"}
CHANNEL_LABELS = {"voice": "电话", "sms": "短信", "wechat": "微信"}
BLANK_ROWS = 3
# Chinese words for the service's field-level problems (its details name the field; the rule stays there).
FIELD_PROBLEMS = {
    "name": "请填写姓名",
    "relation": "请选择关系",
    "channels": "联系方式只能是电话、短信或微信",
    "phone": "电话须为国际格式（如 +8613800000000），选择电话或短信时必须填写",
    "wechat_openid": "选择微信时须填写微信 openid",
    "ring_seconds": "响铃时长须在 5 到 120 秒之间",
    "wait_seconds": "等待时长须在 10 到 600 秒之间",
}


# --- reads scoped to the staff member's street ------------------------------------------------------------
# Read-only lookups; help_devices has no street-scoped reads yet (they belong there when it grows them).

def _street_residents():
    return select(Resident).join(Community, Community.id == Resident.community_id) \
        .where(Community.street_id == current_user.street_id)


def _resident_of_street(resident_id: int) -> Resident:
    """Another street's (or an unknown) resident is simply not found, so ids cannot be probed."""
    resident = db.session.scalar(_street_residents().where(Resident.id == resident_id))
    if resident is None:
        abort(404)
    return resident


def _devices_by_resident(resident_ids: list[int]) -> dict[int, list[HelpDevice]]:
    devices: dict[int, list[HelpDevice]] = {}
    if resident_ids:
        for device in db.session.scalars(select(HelpDevice).where(HelpDevice.resident_id.in_(resident_ids))
                                         .order_by(HelpDevice.id)):
            devices.setdefault(device.resident_id, []).append(device)
    return devices


# --- routes -------------------------------------------------------------------------------------------------

@bp.get("/help/residents")
def help_residents_page():
    residents = db.session.scalars(_street_residents().where(Resident.is_elderly.is_(True))
                                   .order_by(Resident.name, Resident.id)).all()
    ids = [r.id for r in residents]
    chain_sizes = dict(db.session.execute(
        select(HelpContact.resident_id, func.count(HelpContact.id))
        .where(HelpContact.resident_id.in_(ids), HelpContact.position > 0).group_by(HelpContact.resident_id)).all()) \
        if ids else {}
    return render_template("console/help_chains.html", residents=residents, chain_sizes=chain_sizes,
                           devices=_devices_by_resident(ids))


@bp.get("/help/residents/<int:resident_id>")
def help_chain_page(resident_id: int):
    resident = _resident_of_street(resident_id)
    rows = [_row_of(contact) for contact in help_service.contacts_of(resident_id=resident.id)]
    return _render_chain(resident, rows)


@bp.post("/help/residents/<int:resident_id>")
def help_chain_save(resident_id: int):
    resident = _resident_of_street(resident_id)
    rows = _rows_from_form()
    try:
        contacts = _contacts_of_rows(rows)
        help_service.replace_chain(resident_id=resident.id, contacts=contacts)
    except ValidationFailed as exc:
        return _render_chain(resident, rows, errors=_chinese(exc)), 422
    flash("联系链已保存", "info")
    return redirect(url_for("console.help_chain_page", resident_id=resident.id))


# --- form <-> rows ----------------------------------------------------------------------------------------

def _render_chain(resident: Resident, rows: list[dict], errors: list[str] | None = None):
    filled = [r for r in rows if not _is_blank(r)]
    blanks = [_blank_row(len(filled) + i + 1) for i in range(BLANK_ROWS)]
    return render_template("console/help_chains_edit.html", resident=resident, rows=filled + blanks,
                           devices=_devices_by_resident([resident.id]).get(resident.id, []), errors=errors or [],
                           relations=CONTACT_RELATIONS, relation_labels=RELATION_LABELS,
                           channels=ATTEMPT_CHANNELS, channel_labels=CHANNEL_LABELS,
                           max_chain=help_service.MAX_CHAIN)


def _row_of(contact: HelpContact) -> dict:
    return {"id": str(contact.id), "position": str(contact.position), "name": contact.name,
            "phone": contact.phone or "", "wechat_openid": contact.wechat_openid or "", "relation": contact.relation,
            "channels": [c for c in contact.channels.split(",") if c], "ring_seconds": str(contact.ring_seconds),
            "wait_seconds": str(contact.wait_seconds), "remove": False}


def _blank_row(position: int) -> dict:
    return {"id": "", "position": str(position), "name": "", "phone": "", "wechat_openid": "", "relation": "family",
            "channels": ["voice", "sms"], "ring_seconds": "30", "wait_seconds": "60", "remove": False}


def _rows_from_form() -> list[dict]:
    """The submitted rows as typed (strings), kept so a refused save shows the staff member's input again."""
    form = request.form
    count = int(form["rows"]) if form.get("rows", "").isdecimal() else 0  # isdigit() passes "²"; int() does not
    rows = []
    for index in range(min(count, help_service.MAX_CHAIN + BLANK_ROWS)):
        prefix = f"c{index}-"
        rows.append({
            "id": form.get(prefix + "id", "").strip(), "position": form.get(prefix + "position", "").strip(),
            "name": form.get(prefix + "name", "").strip(), "phone": form.get(prefix + "phone", "").strip(),
            "wechat_openid": form.get(prefix + "wechat_openid", "").strip(),
            "relation": form.get(prefix + "relation", ""), "channels": form.getlist(prefix + "channels"),
            "ring_seconds": form.get(prefix + "ring_seconds", "").strip(),
            "wait_seconds": form.get(prefix + "wait_seconds", "").strip(),
            "remove": bool(form.get(prefix + "remove")),
        })
    return rows


def _is_blank(row: dict) -> bool:
    return not row["id"] and not (row["name"] or row["phone"] or row["wechat_openid"])


def _contacts_of_rows(rows: list[dict]) -> list[dict]:
    """Rows to the service's entries, in the order of their position numbers (ties keep the page order)."""
    keyed = []
    for index, row in enumerate(rows):
        if row["remove"] or _is_blank(row):
            continue
        try:
            position = int(row["position"])
            ring, wait = int(row["ring_seconds"] or 30), int(row["wait_seconds"] or 60)
            contact_id = int(row["id"]) if row["id"] else None
        except ValueError:
            raise ValidationFailed("顺序、响铃和等待时长须填写整数", code="not_a_number") from None
        keyed.append((position, index, {
            "id": contact_id, "name": row["name"], "phone": row["phone"] or None,
            "wechat_openid": row["wechat_openid"] or None, "relation": row["relation"],
            "channels": row["channels"], "ring_seconds": ring, "wait_seconds": wait,
        }))
    return [entry for _, _, entry in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _chinese(exc: ValidationFailed) -> list[str]:
    if exc.code == "invalid_contact":
        return [FIELD_PROBLEMS.get(field, f"{field}：{problem}") for field, problem in exc.details.items()]
    if exc.code == "invalid_chain":
        return [f"联系链需要 1 到 {help_service.MAX_CHAIN} 位联系人"]
    if exc.code == "unknown_contact":
        return ["联系人已被他人修改，请刷新页面后重试"]
    if exc.code == "not_a_number":
        return [exc.message]
    return ["保存失败：" + exc.message]
