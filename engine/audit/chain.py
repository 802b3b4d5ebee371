"""Appending events to the hash chain, and reading them back.

Each event's hash is sha256 over a canonical encoding of every field, including
the previous event's hash, so changing, removing or moving any event breaks the
chain from that point. ``append`` runs inside the caller's transaction and never
commits: a casework transition and its event are committed (or rolled back)
together by the caller, and the workspace signs the new head just before it
commits (``engine.audit.checkpoints.seal``).

What goes into ``details`` is checked: no secrets and no biometric data, ever
(an audit bundle leaves the terminal for the oversight board).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.audit._encoding import canonical_json
from engine.audit.clock import Clock, format_utc, utc_now
from engine.audit.store import GENESIS_HASH

_EVENT_DOMAIN = "rfr-audit-event/v1"
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ACTOR_MAX = 64
# Keys that would carry a secret or biometric data. Audit details are read by auditors off the terminal.
_SECRET_KEY = re.compile(r"pass(word|phrase)|secret|private|token|credential|salt", re.IGNORECASE)
# Biometric words are refused unless the value is a whole number (a count such as "templates": 12).
_BIOMETRIC_KEY = re.compile(
    r"template|embedding|descriptor|vector|biometric|pixel|jpeg|image_bytes|image_data", re.IGNORECASE
)
_MAX_NUMBER_RUN = 16  # a longer list of numbers looks like a face template
_MAX_DEPTH = 6

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


@dataclass(frozen=True)
class AuditEvent:
    """One event of the log as stored."""

    seq: int
    at: str
    actor: str
    action: str
    subjects: dict[str, Any]
    details: dict[str, Any]
    prev_hash: str
    hash: str


def event_hash(seq: int, at: str, actor: str, action: str, subjects: str, details: str, prev_hash: str) -> str:
    """sha256 over the canonical encoding of every field (``subjects``/``details`` as their stored JSON text)."""
    body = canonical_json([_EVENT_DOMAIN, seq, at, actor, action, subjects, details, prev_hash])
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def _check_value(value: object, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"audit details {path}: nested too deeply")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit details {path}: {value} is not a finite number")
        return
    if isinstance(value, list | tuple):
        numbers = sum(1 for v in value if isinstance(v, int | float) and not isinstance(v, bool))
        if numbers > _MAX_NUMBER_RUN:
            raise ValueError(f"audit details {path}: a list of {numbers} numbers looks like biometric data")
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit details {path}: keys must be text, got {key!r}")
            count = isinstance(item, int) and not isinstance(item, bool)
            if _SECRET_KEY.search(key) or (_BIOMETRIC_KEY.search(key) and not count):
                raise ValueError(f"audit details {path}.{key}: secrets and biometric data never go in the audit log")
            _check_value(item, f"{path}.{key}", depth + 1)
        return
    raise ValueError(f"audit details {path}: {type(value).__name__} cannot be recorded (bytes never are)")


def _check_subjects(subjects: Mapping[str, object]) -> None:
    for key, value in subjects.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise ValueError(f"audit subjects: key {key!r} must be a lowercase name such as 'case' or 'user'")
        ids = value if isinstance(value, list | tuple) else [value]
        for item in ids:
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise ValueError(f"audit subjects.{key}: ids are text or whole numbers, got {item!r}")


def _check_actor_action(actor: str, action: str) -> None:
    if not isinstance(actor, str) or not actor or len(actor) > _ACTOR_MAX or not actor.isprintable():
        raise ValueError(f"audit actor {actor!r}: give a username or a system actor name (1-{_ACTOR_MAX} characters)")
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        raise ValueError(f"audit action {action!r}: use dotted lowercase names such as 'case.approve'")


def append(
    conn: Any,
    actor: str,
    action: str,
    *,
    subjects: Mapping[str, object] | None = None,
    details: Mapping[str, object] | None = None,
    clock: Clock = utc_now,
) -> AuditEvent:
    """Append one event inside the caller's transaction (never commits; the commit signs the head).

    A concurrent writer cannot fork the chain: the sequence number is the primary key and the
    insert trigger requires the new event to follow the last one, so the loser's insert fails.
    """
    _check_actor_action(actor, action)
    subjects = dict(subjects or {})
    details = dict(details or {})
    _check_subjects(subjects)
    _check_value(details, "", 0)
    subjects_json = canonical_json(subjects)
    details_json = canonical_json(details)
    last = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS_HASH)
    at = format_utc(clock())
    digest = event_hash(seq, at, actor, action, subjects_json, details_json, prev_hash)
    conn.execute(
        "INSERT INTO audit_events (seq, at, actor, action, subjects, details, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, at, actor, action, subjects_json, details_json, prev_hash, digest),
    )
    return AuditEvent(seq, at, actor, action, json.loads(subjects_json), json.loads(details_json), prev_hash, digest)


def events(conn: Any, first: int = 1, last: int | None = None) -> Iterator[AuditEvent]:
    """Stored events from ``first`` to ``last`` (inclusive) in sequence order, as stored (not verified)."""
    query = "SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit_events WHERE seq >= ?"
    params: list[int] = [first]
    if last is not None:
        query += " AND seq <= ?"
        params.append(last)
    for row in conn.execute(query + " ORDER BY seq", params):
        seq, at, actor, action, subjects, details, prev_hash, digest = row
        yield AuditEvent(int(seq), at, actor, action, json.loads(subjects), json.loads(details), prev_hash, digest)
