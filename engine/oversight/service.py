"""The oversight workspace: opened with its own keys, used by its own named auditors, every use recorded.

An oversight workspace is a ``Workspace`` like a terminal's (SQLCipher, its own workspace key and
its own audit signing key file, its own hash-chained signed log) marked ``kind = oversight``.
Accounts work as on a terminal (``engine.security.users``: the first engineer added on an empty
workspace, every later account asked for by one engineer and confirmed by another, under the
default policy's password, lockout and session rules). Auditors register terminals (each with the
audit public key recorded at its installation), import bundles and produce the reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine import audit
from engine.audit.bundle import TERMINAL_NAME
from engine.audit.checkpoints import load_public_key
from engine.audit.signing import AuditSigningKey, key_id_of, raw_public_bytes
from engine.errors import AuditError, ConfigError, UserError, WorkspaceError
from engine.policy import Policy, load_default_policy
from engine.security.keys import WorkspaceKey, obtain_key
from engine.security.users import DEFAULT_SCRYPT, Accounts, Role, ScryptParams, Session, User
from engine.workspace import Clock, Workspace, WorkspaceHeader

KIND = "oversight"
_ENV = {
    "workspace": "RFR_OVERSIGHT_WORKSPACE",
    "key_file": "RFR_OVERSIGHT_WORKSPACE_KEY_FILE",
    "audit_key_file": "RFR_OVERSIGHT_AUDIT_KEY_FILE",
}


@dataclass(frozen=True)
class OversightConfig:
    """Where the oversight workspace and its keys are: given options, else ``RFR_OVERSIGHT_*`` variables."""

    workspace: Path
    audit_key_file: Path
    key_file: Path | None = None

    @classmethod
    def resolve(cls, given: dict[str, Path | None], env: dict[str, str] | None = None) -> OversightConfig:
        environ = dict(os.environ) if env is None else env
        values: dict[str, Path] = {}
        for name, variable in _ENV.items():
            chosen = given.get(name)
            if chosen is not None:
                values[name] = Path(chosen)
            elif environ.get(variable):
                values[name] = Path(environ[variable])
        if "workspace" not in values:
            raise ConfigError("no oversight workspace given: pass --workspace DIR or set RFR_OVERSIGHT_WORKSPACE")
        if "audit_key_file" not in values:
            raise ConfigError(
                "no audit signing key file for the oversight workspace: pass --audit-key-file PATH or set "
                "RFR_OVERSIGHT_AUDIT_KEY_FILE"
            )
        return cls(values["workspace"], values["audit_key_file"], values.get("key_file"))


@dataclass(frozen=True)
class TerminalRecord:
    """A terminal as the oversight knows it: its keys and how far its accepted log reaches."""

    name: str
    registered_at: str
    registered_by: str
    workspace_id: str | None
    keys: tuple[str, ...]
    accepted_through: int
    last_event_at: str | None
    bundles: dict[str, int]
    open_findings: int

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["keys"] = list(self.keys)
        return out


@dataclass(frozen=True)
class Finding:
    """Something an import found that needs an auditor's look: a gap, a fork, a rolled-back or rebuilt log..."""

    id: int
    terminal: str
    kind: str
    bundle: int | None
    other_bundle: int | None
    detail: str
    found_at: str
    resolved_at: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def valid_terminal_name(name: str) -> str:
    text = name.strip()
    if not TERMINAL_NAME.fullmatch(text):
        raise UserError(f"terminal name {name!r}: use 1-64 letters, digits, '.', '_' or '-', as the terminal is named")
    return text


class Oversight:
    """One open oversight workspace and its accounts."""

    def __init__(self, ws: Workspace, *, scrypt: ScryptParams = DEFAULT_SCRYPT, policy: Policy | None = None) -> None:
        self.ws = ws
        self.policy = policy or load_default_policy()
        self.accounts = Accounts(ws, self.policy, scrypt=scrypt)

    # ---- creating and opening ----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        config: OversightConfig,
        key: WorkspaceKey,
        *,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
        clock: Clock | None = None,
    ) -> Self:
        """A new oversight workspace and its audit signing key file (which must not exist)."""
        signing = AuditSigningKey.generate()
        signing.write_file(config.audit_key_file)
        try:
            ws = Workspace.create(config.workspace, key, audit_key=signing, clock=clock)
        except BaseException:
            Path(config.audit_key_file).unlink(missing_ok=True)
            raise
        try:
            with ws.transaction() as conn:
                conn.execute("INSERT INTO workspace_meta (key, value) VALUES ('kind', ?)", (KIND,))
                audit.append(conn, audit.SYSTEM_ACTOR, "oversight.init", details={"kind": KIND}, clock=ws.clock)
        except BaseException:
            ws.close()
            raise
        return cls(ws, scrypt=scrypt)

    @classmethod
    def open(
        cls,
        config: OversightConfig,
        *,
        key: WorkspaceKey | None = None,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
        clock: Clock | None = None,
    ) -> Self:
        """Open the oversight workspace with its key (key file or ``RFR_PASSPHRASE``) and its audit key file."""
        signing = AuditSigningKey.read_file(config.audit_key_file)
        if key is None:
            key = obtain_key(WorkspaceHeader.read(config.workspace).kdf, config.key_file)
        ws = Workspace.open(config.workspace, key, clock=clock, audit_key=signing)
        row = ws.query_one("SELECT value FROM workspace_meta WHERE key = 'kind'")
        if row is None or row[0] != KIND:
            ws.close()
            raise WorkspaceError(
                f"{config.workspace} is a terminal's workspace, not an oversight workspace: "
                "make one with 'rfr oversight init DIR'"
            )
        return cls(ws, scrypt=scrypt)

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- people ------------------------------------------------------------------------------

    def auditor(self, session: Session, doing: str) -> User:
        return self.accounts.require_any(session, doing, Role.AUDITOR)

    def record(self, actor: str, action: str, subjects: dict[str, object] | None = None, **details: object) -> None:
        with self.ws.transaction() as conn:
            audit.append(conn, actor, action, subjects=subjects, details=details, clock=self.ws.clock)

    # ---- terminals -----------------------------------------------------------------------------

    def add_terminal(self, session: Session, name: str, public_key: bytes) -> TerminalRecord:
        """Register a terminal and the audit public key recorded at its installation (auditors; recorded)."""
        user = self.auditor(session, "registering a terminal")
        name = valid_terminal_name(name)
        key = load_public_key(public_key)
        key_id = key_id_of(key)
        with self.ws.transaction() as conn:
            if conn.execute("SELECT 1 FROM oversight_terminals WHERE name = ?", (name,)).fetchone():
                raise UserError(
                    f"terminal {name} is already registered: its key changes only by a signed rotation in its bundles"
                )
            holder = conn.execute("SELECT terminal FROM oversight_terminal_keys WHERE key_id = ?", (key_id,)).fetchone()
            if holder is not None:
                raise AuditError(f"audit key {key_id[:16]} is already registered for terminal {holder[0]}")
            now = audit.format_utc(self.ws.now())
            conn.execute(
                "INSERT INTO oversight_terminals (name, registered_at, registered_by) VALUES (?, ?, ?)",
                (name, now, user.username),
            )
            conn.execute(
                "INSERT INTO oversight_terminal_keys (terminal, key_id, public_key, source, introduced_seq, added_at) "
                "VALUES (?, ?, ?, 'registered', 0, ?)",
                (name, key_id, raw_public_bytes(key), now),
            )
            audit.append(
                conn,
                user.username,
                "oversight.terminal_add",
                subjects={"terminal": name},
                details={"key_id": key_id},
                clock=self.ws.clock,
            )
        return self.terminal(name)

    def trusted_keys(self, name: str) -> dict[str, Ed25519PublicKey]:
        rows = self.ws.query("SELECT key_id, public_key FROM oversight_terminal_keys WHERE terminal = ?", (name,))
        return {str(k): Ed25519PublicKey.from_public_bytes(bytes(raw)) for k, raw in rows}

    def terminal(self, name: str) -> TerminalRecord:
        row = self.ws.query_one(
            "SELECT name, registered_at, registered_by, workspace_id FROM oversight_terminals WHERE name = ?", (name,)
        )
        if row is None:
            raise UserError(f"no terminal {name!r} is registered here: 'rfr oversight terminals add'")
        keys = tuple(
            str(k)
            for (k,) in self.ws.query(
                "SELECT key_id FROM oversight_terminal_keys WHERE terminal = ? ORDER BY introduced_seq", (name,)
            )
        )
        head = self.ws.query_one(
            "SELECT seq, at FROM oversight_events WHERE terminal = ? ORDER BY seq DESC LIMIT 1", (name,)
        )
        bundles = {
            str(status): int(n)
            for status, n in self.ws.query(
                "SELECT status, count(*) FROM oversight_bundles WHERE terminal = ? GROUP BY status", (name,)
            )
        }
        findings = self.ws.query_one(
            "SELECT count(*) FROM oversight_findings WHERE terminal = ? AND resolved_at IS NULL", (name,)
        )
        return TerminalRecord(
            str(row[0]),
            str(row[1]),
            str(row[2]),
            None if row[3] is None else str(row[3]),
            keys,
            0 if head is None else int(head[0]),
            None if head is None else str(head[1]),
            bundles,
            0 if findings is None else int(findings[0]),
        )

    def findings(self, session: Session, *, include_resolved: bool = False) -> list[Finding]:
        """What imports found (open ones, or every one), oldest first (auditors; the look is recorded)."""
        user = self.auditor(session, "reading the findings")
        clause = "" if include_resolved else " WHERE resolved_at IS NULL"
        rows = self.ws.query(
            "SELECT id, terminal, kind, bundle_id, other_bundle_id, detail, found_at, resolved_at "  # noqa: S608
            f"FROM oversight_findings{clause} ORDER BY id"
        )
        self.record(user.username, "oversight.findings_view", findings=len(rows))
        return [
            Finding(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                None if r[3] is None else int(r[3]),
                None if r[4] is None else int(r[4]),
                str(r[5]),
                str(r[6]),
                None if r[7] is None else str(r[7]),
            )
            for r in rows
        ]

    def terminals(self, session: Session) -> list[TerminalRecord]:
        """Every registered terminal and how far its accepted log reaches (auditors; the look is recorded)."""
        user = self.auditor(session, "listing terminals")
        names = [str(r[0]) for r in self.ws.query("SELECT name FROM oversight_terminals ORDER BY name")]
        self.record(user.username, "oversight.terminal_list", terminals=len(names))
        return [self.terminal(n) for n in names]
