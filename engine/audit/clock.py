"""UTC time for the audit log and sessions, with the clock injectable so tests control it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock: an aware UTC datetime."""
    return datetime.now(UTC)


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a 'Z': fixed width, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; give the clock an aware UTC datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    """The inverse of ``format_utc``."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
