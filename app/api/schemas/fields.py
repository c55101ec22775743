"""Fields shared by the API's schemas."""
from __future__ import annotations

from apiflask.fields import String


class Trimmed(String):
    """Text stored without its surrounding white space, trimmed before the validators run: a `Length(1, ...)`
    then refuses a value of spaces alone, which the services would otherwise strip and store empty."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()
