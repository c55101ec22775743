"""Schemas shared by the help routes of the device API and the internal (bot) API."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, String


class AlertRef(Schema):
    id = Integer()
    status = String()
