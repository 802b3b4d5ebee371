"""The audit log as people use it: verify, browse, rotate the signing key; each use checked and recorded.

Auditors verify and browse; engineers verify and rotate the terminal's signing key; each of
these is itself an audit event. The accounts object is the terminal's (``engine.security.users``),
passed in so this module does not import the layer above it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.audit.chain import AuditEvent, append
from engine.audit.checkpoints import export_public_key_pem
from engine.audit.signing import AuditSigningKey
from engine.audit.verify import VerifyResult, verify
from engine.errors import AuditError

if TYPE_CHECKING:
    from engine.security.users import Accounts, Session, User
    from engine.workspace import Workspace

MAX_PAGE = 1000


@dataclass(frozen=True)
class EventFilter:
    """Which events to list: any of actor, action prefix ('case.' or 'case.approve'), subject id, time range."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: str | None = None
    until: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class AuditAccess:
    """Role-checked, recorded access to one workspace's audit log."""

    def __init__(self, ws: Workspace, accounts: Accounts) -> None:
        self._ws = ws
        self._accounts = accounts

    def _holder(self, session: Session, doing: str, *roles: str) -> User:
        from engine.security.users import Role  # the layer above: imported when used, never at import

        return self._accounts.require_any(session, doing, *(Role(r) for r in roles))

    def verify(
        self,
        session: Session,
        *,
        public_key: bytes | None = None,
        expect: tuple[int, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> VerifyResult:
        """Verify the log against the auditor's recorded key, else the terminal's own signing key file."""
        user = self._holder(session, "audit verification", "auditor", "engineer")
        trusted: Any = public_key if public_key is not None else self._ws.audit_public_key
        if trusted is None:
            raise AuditError("verification needs a public key: pass --public-key FILE")
        with self._ws.reading() as conn:
            result = verify(conn, trusted, expect=expect, progress=progress)
        with self._ws.transaction() as conn:
            append(
                conn,
                user.username,
                "audit.verify",
                details={
                    "ok": result.ok,
                    "events": result.events,
                    "problems": len(result.problems),
                    "key": "given by the auditor" if public_key is not None else "the terminal's own",
                    "expected": None if expect is None else f"{expect[0]}:{expect[1]}",
                },
                clock=self._ws.clock,
            )
        return result

    def events(
        self, session: Session, selection: EventFilter | None = None, *, limit: int = 200, before: int | None = None
    ) -> list[AuditEvent]:
        """Events, newest first, matching ``selection`` (auditors only; the look is recorded)."""
        user = self._holder(session, "reading the audit log", "auditor")
        chosen = selection or EventFilter()
        limit = max(1, min(limit, MAX_PAGE))
        clauses: list[str] = ["1 = 1"]
        params: list[object] = []
        if chosen.actor:
            clauses.append("actor = ?")
            params.append(chosen.actor)
        if chosen.action:
            clauses.append("(action = ? OR action LIKE ? ESCAPE '\\')")
            escaped = chosen.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params += [chosen.action, escaped.rstrip(".") + ".%"]
        if chosen.subject:
            clauses.append("subjects LIKE ? ESCAPE '\\'")
            escaped = chosen.subject.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        if chosen.since:
            clauses.append("at >= ?")
            params.append(chosen.since)
        if chosen.until:
            clauses.append("at < ?")
            params.append(chosen.until)
        if before is not None:
            clauses.append("seq < ?")
            params.append(before)
        sql = (
            "SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit_events WHERE "  # noqa: S608
            + " AND ".join(clauses)
            + " ORDER BY seq DESC LIMIT ?"
        )
        rows = self._ws.query(sql, (*params, limit))
        found = [AuditEvent(int(r[0]), r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6], r[7]) for r in rows]
        with self._ws.transaction() as conn:
            append(
                conn,
                user.username,
                "audit.view",
                details={"filter": chosen.to_json(), "events": len(found)},
                clock=self._ws.clock,
            )
        return found

    def public_key_pem(self, session: Session) -> str:
        """The key the log is signed with now, for the auditor to record."""
        self._holder(session, "exporting the audit public key", "auditor", "engineer")
        with self._ws.reading() as conn:
            return export_public_key_pem(conn)

    def rotate_key(self, session: Session, key_file: Path, reason: str) -> int:
        """Hand signing over to a new key written in place of the terminal's key file (engineers).

        The new key is written beside the old file first; the hand-over is recorded and signed
        with the old key; then the new file replaces the old. A crash between the two leaves
        ``<file>.new``, which ``Terminal.open`` can then adopt (see ``adopt_pending_key``).
        """
        user = self._holder(session, "rotating the audit key", "engineer")
        text = " ".join(reason.split())
        if not text:
            raise AuditError("rotating the audit key needs a reason (--reason TEXT)")
        pending = pending_key_path(key_file)
        new_key = AuditSigningKey.generate()
        new_key.write_file(pending)
        try:
            seq = self._ws.rotate_audit_key(user.username, new_key, text)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        os.replace(pending, key_file)
        return seq


def pending_key_path(key_file: Path) -> Path:
    return Path(key_file).with_name(Path(key_file).name + ".new")
