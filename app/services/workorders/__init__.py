"""Work orders (issue 21): a street's departments, tickets dispatched to them and moved between them, their time
limits, the follow-up (回访) after resolution, and duplicate reports linked to one parent (docs/workorders.md).

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.workorders.completion import complete, reopen_with_ticket, resolve_ticket, set_ticket_status
from app.services.workorders.departments import (
    SUGGESTED_NAMES,
    add_member,
    create_department,
    department_ids_of,
    departments_of_street,
    get_department,
    members_of,
    remove_member,
)
from app.services.workorders.duplicates import children_of, link_new_reports, parent_of, tell_outcome
from app.services.workorders.followup import answer as answer_followup
from app.services.workorders.followup import answer_by_message as answer_followup_by_message
from app.services.workorders.followup import answer_of_request as answer_followup_of_request
from app.services.workorders.followup import latest_of as latest_followup
from app.services.workorders.followup import parse_answer as parse_followup_answer
from app.services.workorders.limits import all_limits, limits_for, set_limit
from app.services.workorders.orders import (
    STATE_LABELS,
    acknowledge,
    breached_orders_for,
    department_queue,
    dispatch,
    oversee,
    respond,
    return_order,
    returned_orders,
    transfer,
    work_order_of,
)
from app.services.workorders.photos import place_of, thumbnail
from app.services.workorders.timers import sweep as sweep_timers
from app.services.workorders.timers import text_lead
