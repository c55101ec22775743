"""A small stand-in for the app's internal API (docs/contracts.md) with deterministic data.

Used by the action tests (a real HTTP server on 127.0.0.1, no mocking) and for trying the bot
by hand: `python bot/tests/fake_app.py --port 5099` and LINLI_API_URL=http://127.0.0.1:5099.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

import yaml

SHANGHAI = timezone(timedelta(hours=8))
FAQ_FILE = Path(__file__).resolve().parents[2] / "app" / "seed_data" / "faq.yml"
DEPARTMENTS = ["内科", "外科", "儿科", "妇科", "口腔科", "眼科", "耳鼻喉科", "皮肤科", "骨科", "中医科", "全科", "心内科"]
# (time, doctor, title): the same timetable every weekday; no clinic on Sundays.
TIMETABLE = [
    ("08:30", "张伟", "主任医师"),
    ("09:00", "张伟", "主任医师"),
    ("10:00", "王芳", "副主任医师"),
    ("13:30", "李强", "主治医师"),
    ("14:30", "李强", "主治医师"),
]


def slot_id(department_id: int, day: date, index: int) -> int:
    return department_id * 10**8 + int(day.strftime("%y%m%d")) * 10 + index


@dataclass
class FakeState:
    token: str = "test-token"
    booked: dict[int, str] = field(default_factory=dict)  # slot id -> sender
    appointments: dict[int, dict] = field(default_factory=dict)
    help_calls: list[dict] = field(default_factory=list)
    handoffs: list[dict] = field(default_factory=list)
    past_deadline: set[int] = field(default_factory=set)  # appointment ids too late to cancel
    senders_without_patient: set[str] = field(default_factory=lambda: {"conv-nopatient"})
    faq: dict[str, dict] = field(default_factory=dict)
    holds: dict[int, dict] = field(default_factory=dict)  # id -> {sender, slot_id, kind, status, expires_at}
    waitlist: dict[int, dict] = field(default_factory=dict)  # id -> {sender, department, date, status, offer_id}
    hold_seconds: int = 300
    lock: threading.Lock = field(default_factory=threading.Lock)

    def live_hold(self, sid: int) -> Optional[dict]:
        return next((h for h in self.holds.values() if h["slot_id"] == sid and _live(h)), None)

    def slot(self, sid: int) -> Optional[dict]:
        department_id, rest = divmod(sid, 10**8)
        day_code, index = divmod(rest, 10)
        if not 1 <= department_id <= len(DEPARTMENTS) or index >= len(TIMETABLE):
            return None
        try:
            day = datetime.strptime(f"{day_code:06d}", "%y%m%d").date()
        except ValueError:
            return None
        if day.weekday() == 6:
            return None
        clock, doctor, title = TIMETABLE[index]
        start = datetime.combine(day, datetime.strptime(clock, "%H:%M").time(), SHANGHAI)
        return {
            "id": sid, "department": DEPARTMENTS[department_id - 1], "doctor": doctor, "doctor_title": title,
            "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
            "free": sid not in self.booked and self.live_hold(sid) is None,
        }

    def take_day(self, department: str, day: date) -> None:
        """Books every slot of a department's day behind the bot's back: the day is full."""
        for index in range(len(TIMETABLE)):
            self.take(slot_id(DEPARTMENTS.index(department) + 1, day, index))

    def expire(self, hold_id: int) -> None:
        """Moves a hold (or an offer) past its time, as the clock would."""
        self.holds[hold_id]["expires_at"] = time.time() - 1

    def offer(self, entry_id: int, sid: int, seconds: int = 1800) -> int:
        """Gives a freed seat to a waitlist entry, as the app does when someone cancels."""
        with self.lock:
            self.booked.pop(sid, None)
            hold_id = self._new_hold(self.waitlist[entry_id]["sender"], sid, kind="offer", seconds=seconds)
            self.waitlist[entry_id].update(status="offered", offer_id=hold_id)
        return hold_id

    def lapse(self, entry_id: int) -> None:
        entry = self.waitlist[entry_id]
        self.holds[entry["offer_id"]]["status"] = "expired"
        entry["status"] = "lapsed"

    def _new_hold(self, sender: str, sid: int, *, kind: str = "hold", seconds: Optional[int] = None) -> int:
        hold_id = len(self.holds) + 1
        self.holds[hold_id] = {"id": hold_id, "sender": sender, "slot_id": sid, "kind": kind, "status": "held",
                               "expires_at": time.time() + (seconds or self.hold_seconds)}
        return hold_id

    def take(self, sid: int, sender: str = "someone-else") -> None:
        """Books a slot behind the bot's back, as another resident would."""
        with self.lock:
            self.booked[sid] = sender


def _department_id(value: str) -> Optional[int]:
    if value.isdigit() and 1 <= int(value) <= len(DEPARTMENTS):
        return int(value)
    return DEPARTMENTS.index(value) + 1 if value in DEPARTMENTS else None


class Handler(BaseHTTPRequestHandler):
    state: FakeState  # set on the subclass made by make_server

    def log_message(self, *args: Any) -> None:  # quiet in tests
        pass

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: str, message: str = "") -> None:
        self._send(status, {"error": {"code": code, "message": message or code}})

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._error(401, "unauthorized")
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if parts[:3] == ["api", "internal", "faq"] and len(parts) == 4:
            article = self.state.faq.get(parts[3])
            return self._send(200, article) if article else self._error(404, "not_found")
        if url.path == "/api/internal/departments":
            return self._send(200, {"departments": [
                {"id": i, "name": name, "hospital": "邻里社区卫生服务中心"} for i, name in enumerate(DEPARTMENTS, 1)
            ]})
        if url.path == "/api/internal/slots":
            return self._slots(query)
        if url.path == "/api/internal/appointments":
            sender = query.get("sender", "")
            mine = [a for a in self.state.appointments.values() if a["sender"] == sender and a["status"] == "booked"]
            mine.sort(key=lambda a: a["start"])
            return self._send(200, {"appointments": [_public(a) for a in mine]})
        if url.path == "/api/internal/waitlist":
            sender = query.get("sender", "")
            mine = [e for e in self.state.waitlist.values() if e["sender"] == sender]
            return self._send(200, {"entries": [self._entry(e) for e in mine]})
        self._error(404, "not_found")

    def _slots(self, query: dict) -> None:
        department_id = _department_id(query.get("department", ""))
        if department_id is None:
            return self._error(404, "not_found", "no such department")
        try:
            day = date.fromisoformat(query.get("date", ""))
        except ValueError:
            return self._error(422, "invalid", "date must be YYYY-MM-DD")
        session, limit = query.get("session"), int(query.get("limit", 5))
        slots = [self.state.slot(slot_id(department_id, day, i)) for i in range(len(TIMETABLE))]
        free = [s for s in slots if s and s["free"]]
        if session in ("morning", "afternoon"):
            free = [s for s in free if (datetime.fromisoformat(s["start"]).hour < 12) == (session == "morning")]
        self._send(200, {"slots": free[:limit]})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        sender = body.get("sender", "")
        parts = urlparse(self.path).path.strip("/").split("/")
        if parts == ["api", "internal", "appointments"]:
            return self._book(sender, body.get("slot_id"))
        if parts[:3] == ["api", "internal", "appointments"] and parts[4:] == ["cancel"]:
            return self._cancel(sender, parts[3])
        if parts == ["api", "internal", "holds"]:
            return self._hold(sender, body.get("slot_id"))
        if parts[:3] == ["api", "internal", "holds"] and len(parts) == 5:
            return self._hold_step(sender, parts[3], parts[4])
        if parts == ["api", "internal", "waitlist"]:
            return self._join(sender, body.get("department", ""), body.get("date", ""))
        if parts[:3] == ["api", "internal", "waitlist"] and len(parts) == 5:
            return self._entry_step(sender, parts[3], parts[4])
        if parts == ["api", "internal", "help"]:
            self.state.help_calls.append(body)
            return self._send(201, {"alert": {"id": len(self.state.help_calls), "status": "raised"}})
        if parts == ["api", "internal", "handoff"]:
            self.state.handoffs.append(body)
            return self._send(201, {"ticket": {"id": len(self.state.handoffs), "status": "open"}})
        self._error(404, "not_found")

    def _book(self, sender: str, sid: Any) -> None:
        if sender in self.state.senders_without_patient:
            return self._error(422, "no_patient", "resident has no patient record")
        slot = self.state.slot(int(sid)) if str(sid).isdigit() else None
        if slot is None:
            return self._error(404, "not_found")
        with self.state.lock:
            if not slot["free"]:
                return self._error(409, "slot_taken", "slot already booked")
            appointment = self._add_appointment(sender, slot)
        self._send(201, {"appointment": _public(appointment)})

    # --- held seats and the waitlist (docs/booking.md, "Held seats and the waitlist") ---
    def _hold(self, sender: str, sid: Any) -> None:
        if sender in self.state.senders_without_patient:
            return self._error(422, "no_patient", "resident has no patient record")
        slot = self.state.slot(int(sid)) if str(sid).isdigit() else None
        if slot is None:
            return self._error(404, "not_found")
        with self.state.lock:
            held = self.state.live_hold(slot["id"])
            if held and held["sender"] == sender:
                return self._send(201, {"hold": self._hold_out(held)})  # holding again answers the same hold
            if held or slot["id"] in self.state.booked:
                return self._error(409, "slot_taken", "no seat left")
            same_day = [h for h in self.state.holds.values() if h["sender"] == sender and _live(h)
                        and h["slot_id"] // 10 == slot["id"] // 10]
            if same_day:
                return self._error(409, "already_holding", "confirm or release the held seat first")
            hold_id = self.state._new_hold(sender, slot["id"])
        self._send(201, {"hold": self._hold_out(self.state.holds[hold_id])})

    def _hold_step(self, sender: str, raw_id: str, step: str) -> None:
        hold = self.state.holds.get(int(raw_id)) if raw_id.isdigit() else None
        if hold is None or hold["sender"] != sender or step not in ("confirm", "release"):
            return self._error(404, "not_found")
        with self.state.lock:
            if step == "release":
                if hold["status"] == "confirmed":
                    return self._error(409, "hold_confirmed", "cancel the appointment instead")
                if hold["status"] == "held":
                    hold["status"] = "released"
                return self._send(200, {"hold": self._hold_out(hold)})
            if hold["status"] == "confirmed":
                return self._send(201, {"appointment": _public(self.state.appointments[hold["appointment_id"]])})
            if hold["status"] == "released":
                return self._error(409, "hold_released", "the hold was released")
            if not _live(hold):
                hold["status"] = "expired"
                return self._error(409, "hold_expired", "the hold ran out")
            hold["status"] = "confirmed"
            appointment = self._add_appointment(sender, self.state.slot(hold["slot_id"]))
            hold["appointment_id"] = appointment["id"]
        self._send(201, {"appointment": _public(appointment)})

    def _join(self, sender: str, department: str, raw_date: str) -> None:
        department_id = _department_id(department)
        if department_id is None:
            return self._error(404, "not_found", "no such department")
        day = date.fromisoformat(raw_date)
        slots = [self.state.slot(slot_id(department_id, day, i)) for i in range(len(TIMETABLE))]
        if not any(slots):
            return self._error(409, "no_slots", "no clinic that day")
        free = [s for s in slots if s and s["free"]]
        if free:
            return self._error(409, "seats_available", "book a free seat")
        with self.state.lock:
            if any(e["sender"] == sender and e["department"] == DEPARTMENTS[department_id - 1]
                   and e["date"] == day.isoformat() and e["status"] in ("waiting", "offered")
                   for e in self.state.waitlist.values()):
                return self._error(409, "already_waiting", "already in line")
            entry_id = len(self.state.waitlist) + 1
            self.state.waitlist[entry_id] = {"id": entry_id, "sender": sender, "status": "waiting", "offer_id": None,
                                             "department": DEPARTMENTS[department_id - 1], "date": day.isoformat()}
        self._send(201, {"entry": self._entry(self.state.waitlist[entry_id])})

    def _entry_step(self, sender: str, raw_id: str, step: str) -> None:
        entry = self.state.waitlist.get(int(raw_id)) if raw_id.isdigit() else None
        if entry is None or entry["sender"] != sender or step not in ("accept", "leave"):
            return self._error(404, "not_found")
        offer = self.state.holds.get(entry["offer_id"]) if entry["offer_id"] else None
        with self.state.lock:
            if step == "leave":
                if entry["status"] in ("waiting", "offered"):
                    entry["status"] = "left"
                    if offer and offer["status"] == "held":
                        offer["status"] = "released"
                return self._send(200, {"entry": self._entry(entry)})
            if entry["status"] == "booked":
                return self._send(201, {"appointment": _public(self.state.appointments[offer["appointment_id"]])})
            if entry["status"] == "waiting":
                return self._error(409, "no_offer", "no seat offered yet")
            if entry["status"] == "left":
                return self._error(409, "not_in_line", "left the waitlist")
            if entry["status"] == "lapsed" or not _live(offer):
                entry["status"], offer["status"] = "lapsed", "expired"
                return self._error(409, "offer_lapsed", "the offer ran out")
            appointment = self._add_appointment(sender, self.state.slot(offer["slot_id"]))
            offer.update(status="confirmed", appointment_id=appointment["id"])
            entry["status"] = "booked"
        self._send(201, {"appointment": _public(appointment)})

    def _add_appointment(self, sender: str, slot: dict) -> dict:
        self.state.booked[slot["id"]] = sender
        appointment = {
            "id": len(self.state.appointments) + 1, "slot_id": slot["id"], "department": slot["department"],
            "doctor": slot["doctor"], "start": slot["start"], "status": "booked", "patient_name": "王阿姨",
            "sender": sender,
        }
        self.state.appointments[appointment["id"]] = appointment
        return appointment

    def _hold_out(self, hold: dict) -> dict:
        slot = self.state.slot(hold["slot_id"])
        expires = datetime.fromtimestamp(hold["expires_at"], SHANGHAI).isoformat()
        return {"id": hold["id"], "kind": hold["kind"], "status": hold["status"], "slot_id": hold["slot_id"],
                "department": slot["department"], "doctor": slot["doctor"], "start": slot["start"],
                "expires_at": expires, "patient_name": "王阿姨"}

    def _entry(self, entry: dict) -> dict:
        waiting = sorted(e["id"] for e in self.state.waitlist.values() if e["status"] == "waiting"
                         and (e["department"], e["date"]) == (entry["department"], entry["date"]))
        offer = self.state.holds.get(entry["offer_id"]) if entry["offer_id"] else None
        return {"id": entry["id"], "department": entry["department"], "date": entry["date"],
                "status": entry["status"], "patient_name": "王阿姨",
                "position": waiting.index(entry["id"]) + 1 if entry["status"] == "waiting" else None,
                "offer": self._hold_out(offer) if entry["status"] == "offered" and offer else None}

    def _cancel(self, sender: str, raw_id: str) -> None:
        appointment = self.state.appointments.get(int(raw_id)) if raw_id.isdigit() else None
        if appointment is None or appointment["sender"] != sender:
            return self._error(404, "not_found")
        if appointment["id"] in self.state.past_deadline:
            return self._error(409, "past_deadline", "too late to cancel")
        with self.state.lock:
            appointment["status"] = "cancelled"
            self.state.booked.pop(appointment["slot_id"], None)
        self._send(200, {"appointment": _public(appointment)})


def _live(hold: Optional[dict]) -> bool:
    return bool(hold) and hold["status"] == "held" and hold["expires_at"] > time.time()


def _public(appointment: dict) -> dict:
    return {k: v for k, v in appointment.items() if k != "sender"}


def load_faq(path: Path = FAQ_FILE) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {item["topic"]: item for item in yaml.safe_load(path.read_text(encoding="utf-8"))}


def make_server(port: int = 0, state: Optional[FakeState] = None) -> tuple[ThreadingHTTPServer, FakeState]:
    state = state or FakeState(faq=load_faq())
    handler = type("BoundHandler", (Handler,), {"state": state})
    return ThreadingHTTPServer(("127.0.0.1", port), handler), state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5099)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--full", action="append", default=[], metavar="DEPARTMENT:YYYY-MM-DD",
                        help="a department's day with every seat booked (the waitlist case); repeatable")
    args = parser.parse_args()
    server, state = make_server(args.port)
    state.token = args.token
    for full in args.full:
        department, day = full.split(":")
        state.take_day(department, date.fromisoformat(day))
    print(f"fake Linli API on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
