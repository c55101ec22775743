"""A street's departments (物业, 城管, 民政, 社区居委会 ...): their members and lead, all staff of that street.

Team leads (admins) of the street set them up; a department of another street is "not found", as a ticket is."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.core.extensions import db
from app.models import Staff, WorkDepartment, WorkDepartmentMember

SUGGESTED_NAMES = ("物业", "城管", "民政", "社区居委会")


def get_department(*, department_id: int, street_id: int) -> WorkDepartment:
    department = db.session.get(WorkDepartment, department_id)
    if department is None or department.street_id != street_id or not department.active:
        raise NotFound("部门不存在", code="department_not_found")
    return department


def departments_of_street(*, street_id: int) -> list[WorkDepartment]:
    return list(db.session.scalars(
        select(WorkDepartment).where(WorkDepartment.street_id == street_id, WorkDepartment.active.is_(True))
        .order_by(WorkDepartment.name)
    ))


def department_ids_of(*, staff: Staff) -> set[int]:
    """The departments the staff member belongs to or leads."""
    led = select(WorkDepartment.id).where(WorkDepartment.lead_id == staff.id, WorkDepartment.active.is_(True))
    member = (select(WorkDepartmentMember.department_id)
              .join(WorkDepartment, WorkDepartment.id == WorkDepartmentMember.department_id)
              .where(WorkDepartmentMember.staff_id == staff.id, WorkDepartment.active.is_(True)))
    return set(db.session.scalars(led)) | set(db.session.scalars(member))


def members_of(*, department_id: int) -> list[Staff]:
    return list(db.session.scalars(
        select(Staff).join(WorkDepartmentMember, WorkDepartmentMember.staff_id == Staff.id)
        .where(WorkDepartmentMember.department_id == department_id).order_by(Staff.display_name)
    ))


def _require_admin(actor: Staff) -> None:
    if actor.role != "admin":
        raise Forbidden("只有组长可以设置部门", code="admin_only")


def _street_staff(staff_id: int, street_id: int) -> Staff:
    staff = db.session.get(Staff, staff_id)
    if staff is None or staff.street_id != street_id or not staff.active:
        raise NotFound("没有这位工作人员", code="staff_not_found")
    return staff


def create_department(*, actor: Staff, name: str, lead_id: int | None = None) -> WorkDepartment:
    _require_admin(actor)
    name = (name or "").strip()
    if not name or len(name) > 50:
        raise ValidationFailed("部门名称为1-50个字", code="invalid_department_name")
    lead = _street_staff(lead_id, actor.street_id) if lead_id is not None else None
    department = WorkDepartment(street_id=actor.street_id, name=name, lead_id=lead.id if lead else None)
    try:
        with db.session.begin_nested():
            db.session.add(department)
    except IntegrityError as exc:
        raise Conflict(f"本街道已有部门“{name}”", code="department_exists") from exc
    if lead is not None:
        db.session.add(WorkDepartmentMember(department_id=department.id, staff_id=lead.id))
    db.session.commit()
    return department


def add_member(*, actor: Staff, department_id: int, staff_id: int, lead: bool = False) -> WorkDepartment:
    """Add a member (the street's staff only); lead=True also makes them the department's lead."""
    department = get_department(department_id=department_id, street_id=actor.street_id)
    _require_admin(actor)
    staff = _street_staff(staff_id, actor.street_id)
    if db.session.get(WorkDepartmentMember, (department.id, staff.id)) is None:
        db.session.add(WorkDepartmentMember(department_id=department.id, staff_id=staff.id))
    if lead:
        department.lead_id = staff.id
    db.session.commit()
    return department


def remove_member(*, actor: Staff, department_id: int, staff_id: int) -> WorkDepartment:
    department = get_department(department_id=department_id, street_id=actor.street_id)
    _require_admin(actor)
    membership = db.session.get(WorkDepartmentMember, (department.id, staff_id))
    if membership is None:
        raise NotFound("此人不是该部门成员", code="not_a_member")
    db.session.delete(membership)
    if department.lead_id == staff_id:
        department.lead_id = None
    db.session.commit()
    return department
