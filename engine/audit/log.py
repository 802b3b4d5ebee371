"""Starting a workspace's log and handing its signing over to a new key.

Both run inside the caller's transaction and sign their own head explicitly, so the event
that names a key is vouched for by the right key: the first head by the first key, and a
rotation's head by the key being retired (the new key signs only what follows).
"""

from __future__ import annotations

from typing import Any

from engine.audit.chain import append
from engine.audit.checkpoints import checkpoint, current_key, register_key
from engine.audit.clock import Clock, utc_now
from engine.audit.signing import AuditSigningKey
from engine.errors import AuditError

SYSTEM_ACTOR = "system"
"""The actor of what the terminal does by itself under the policy (retention sweeps, index checks)."""


def start_log(conn: Any, key: AuditSigningKey, workspace_id: str, clock: Clock = utc_now) -> None:
    """A new workspace's first event names its audit key; the first head is signed with it."""
    if conn.execute("SELECT 1 FROM audit_events LIMIT 1").fetchone() is not None:
        raise AuditError("this workspace's audit log has already started")
    register_key(conn, key, 0, clock)
    append(
        conn,
        SYSTEM_ACTOR,
        "workspace.create",
        subjects={"workspace": workspace_id},
        details={"audit_key_id": key.key_id},
        clock=clock,
    )
    checkpoint(conn, key, clock)


def rotate_key(
    conn: Any, actor: str, old: AuditSigningKey, new: AuditSigningKey, reason: str, clock: Clock = utc_now
) -> int:
    """Record the hand-over to ``new`` (signed with ``old``) and register ``new``; return the rotation's seq."""
    if current_key(conn).key_id != old.key_id:
        raise AuditError("key rotation refused: the current audit key file does not belong to this workspace")
    if new.key_id == old.key_id:
        raise AuditError("key rotation refused: the new audit key is the current one")
    event = append(
        conn,
        actor,
        "audit.key_rotated",
        details={"old_key_id": old.key_id, "new_key_id": new.key_id, "reason": reason},
        clock=clock,
    )
    checkpoint(conn, old, clock)
    register_key(conn, new, event.seq, clock)
    return event.seq
