"""Elder care beyond the button: device heartbeats, daily check-in (平安打卡), re-alerts and the watchdog (issue 22).

This module is the domain's public API: other domains and the routes call only what it names."""
# ruff: noqa: F401  (every import here is a re-export)
from app.services.care.checkins import (
    canonical_checkin,
    check_in,
    check_in_by_device,
    check_in_by_sms,
    check_in_from_menu,
    detect_missed,
    enrol,
    enrolment_of,
    raise_missed,
    unenrol,
)
from app.services.care.device_watch import devices_of_street
from app.services.care.device_watch import sweep as sweep_devices
from app.services.care.heartbeats import canonical_heartbeat, record_heartbeat, sign_heartbeat
from app.services.care.realerts import sweep as realert_accepted
from app.services.care.resident_calls import is_resident_call, resident_key, resident_script
from app.services.care.watchdog import OVERDUE_AFTER, overdue_steps
