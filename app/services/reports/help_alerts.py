"""Help alerts: how fast someone accepted, who it was (family, neighbour, grid worker, staff), which
alerts ran the whole chain (a second round or the alarm), and how they ended."""
from __future__ import annotations

from sqlalchemy import case, func, or_, select

from app.core.extensions import db
from app.models import HelpAlert, HelpContact, Resident
from app.services.help import OUTCOMES
from app.services.reports._sql import in_range, percentiles, scoped_resident_ids, seconds_between
from app.services.reports.export import Section, minutes

RELATION_LABELS = {"family": "家人", "neighbour": "邻居", "grid_worker": "网格员", "staff": "街道工作人员"}
STATUS_LABELS = {"escalating": "呼叫中", "accepted": "已接单", "resolved": "已结束", "cancelled": "已取消"}
CHAIN_LIST_LIMIT = 100


def report(*, scope) -> dict:
    where = [in_range(HelpAlert.created_at, scope), HelpAlert.resident_id.in_(scoped_resident_ids(scope))]
    # A contact accepts by pressing 1 or a link; staff accept on the help board (no contact row).
    relation = case((HelpContact.relation.is_not(None), HelpContact.relation),
                    (HelpAlert.accepted_staff_id.is_not(None), "staff"), else_="unknown")
    accepted = (select(relation.label("relation"), func.count().label("n"))
                .select_from(HelpAlert).outerjoin(HelpContact, HelpContact.id == HelpAlert.accepted_contact_id)
                .where(*where, HelpAlert.accepted_at.is_not(None)).group_by(relation))
    wait = seconds_between(HelpAlert.accepted_at, HelpAlert.created_at)
    overall = percentiles(value=wait, where=where).get(None, {"n": 0, "p50": None, "p90": None})
    outcome = func.coalesce(HelpAlert.outcome, HelpAlert.status)
    outcomes = (select(outcome.label("outcome"), func.count().label("n")).where(*where)
                .group_by(outcome).order_by(func.count().desc(), outcome))
    total = db.session.scalar(select(func.count()).select_from(HelpAlert).where(*where))
    return {
        "alerts": total,
        "time_to_accept": overall,
        "accepted_by": [{"relation": r.relation, "label": RELATION_LABELS.get(r.relation, "未知"), "count": r.n}
                        for r in db.session.execute(accepted)],
        "outcomes": [{"outcome": r.outcome, "label": OUTCOMES.get(r.outcome) or STATUS_LABELS.get(r.outcome, r.outcome),
                      "count": r.n} for r in db.session.execute(outcomes)],
        "whole_chain": _whole_chain(where),
    }


def _whole_chain(where) -> dict:
    ran_out = or_(HelpAlert.round > 1, HelpAlert.alarm)
    count = db.session.scalar(select(func.count()).select_from(HelpAlert).where(*where, ran_out))
    stmt = (select(HelpAlert.id, HelpAlert.created_at, HelpAlert.round, HelpAlert.alarm, HelpAlert.status,
                   HelpAlert.outcome, Resident.name)
            .join(Resident, Resident.id == HelpAlert.resident_id).where(*where, ran_out)
            .order_by(HelpAlert.created_at.desc(), HelpAlert.id.desc()).limit(CHAIN_LIST_LIMIT))
    return {"count": count, "alerts": [
        {"id": r.id, "resident": r.name, "created_at": r.created_at.isoformat(), "round": r.round, "alarm": r.alarm,
         "status": r.status, "outcome": r.outcome} for r in db.session.execute(stmt)]}


def sections(data: dict) -> list[Section]:
    wait = data["time_to_accept"]
    return [
        Section("一键求助", ["求助数", "已接单", "接单用时中位数（分钟）", "接单用时P90（分钟）", "整条呼叫链走完"],
                [[data["alerts"], wait["n"], minutes(wait["p50"]), minutes(wait["p90"]),
                  data["whole_chain"]["count"]]]),
        Section("接单人", ["关系", "次数"], [[a["label"], a["count"]] for a in data["accepted_by"]]),
        Section("结果", ["结果", "次数"], [[o["label"], o["count"]] for o in data["outcomes"]]),
        Section("走完整条呼叫链的求助", ["编号", "居民", "时间(UTC)", "轮次", "已报警", "状态", "结果"],
                [[a["id"], a["resident"], a["created_at"], a["round"], "是" if a["alarm"] else "",
                  STATUS_LABELS.get(a["status"], a["status"]), OUTCOMES.get(a["outcome"], a["outcome"] or "")]
                 for a in data["whole_chain"]["alerts"]]),
    ]
