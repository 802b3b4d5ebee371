"""Terminals for tests: a real encrypted workspace, real keys, the stand-in face engine, real accounts.

``make_terminal`` writes a workspace key file and an audit signing key file beside the
workspace, as ``rfr workspace init`` does; ``provision`` adds people the way a terminal does
(the first engineer, a second one, then each account asked for by one engineer, confirmed by
the other, and its password changed at first sign-in) and signs them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.audit import AuditSigningKey
from engine.policy import Policy
from engine.security.keys import WorkspaceKey
from engine.security.users import ScryptParams, Session
from engine.terminal import FaceProvider, Terminal, TerminalConfig
from engine.workspace import Clock, Workspace
from tests.synthetic import SyntheticFaceEngine

FAST = ScryptParams(n=2**10)  # the terminal's cost is a second a hash
PASSWORD = "correct horse battery"
FIRST_PASSWORD = "first password, set by an engineer"
ENGINEERS = ("eng1", "eng2")


def synthetic_faces(engine: SyntheticFaceEngine | None = None) -> FaceProvider:
    chosen = engine or SyntheticFaceEngine()
    return FaceProvider(lambda: chosen, lambda: (chosen.model_id, chosen.model_sha256))


def new_workspace(directory: Path, *, key: WorkspaceKey | None = None, clock: Clock | None = None) -> Workspace:
    """A bare workspace (no terminal around it) that can record: its audit key lives only in memory."""
    return Workspace.create(
        directory, key or WorkspaceKey.generate(), audit_key=AuditSigningKey.generate(), clock=clock
    )


def terminal_config(directory: Path) -> TerminalConfig:
    return TerminalConfig(
        workspace=directory,
        key_file=directory.with_name(directory.name + ".key"),
        audit_key_file=directory.with_name(directory.name + ".audit-key"),
        name="TEST-TERMINAL",
    )


def make_terminal(
    directory: Path,
    *,
    clock: Clock | None = None,
    faces: FaceProvider | None = None,
    engine: SyntheticFaceEngine | None = None,
    policy: Policy | None = None,
) -> Terminal:
    """A new terminal in ``directory`` with its key files beside it."""
    config = terminal_config(directory)
    key = WorkspaceKey.generate()
    key.write_key_file(config.key_file)  # type: ignore[arg-type]
    return Terminal.create(config, key, faces=faces or synthetic_faces(engine), scrypt=FAST, clock=clock, policy=policy)


def reopen(
    directory: Path,
    *,
    clock: Clock | None = None,
    engine: SyntheticFaceEngine | None = None,
    sweep: bool = True,
    policy: Policy | None = None,
) -> Terminal:
    return Terminal.open(
        terminal_config(directory), faces=synthetic_faces(engine), scrypt=FAST, clock=clock, sweep=sweep, policy=policy
    )


def provision(
    terminal: Terminal, people: Mapping[str, tuple[Sequence[str], str | None]], password: str = PASSWORD
) -> dict[str, Session]:
    """Add two engineers and ``people`` (name: (roles, rank)) as the terminal does; sign everyone in."""
    accounts = terminal.accounts
    if not accounts.has_users():
        accounts.bootstrap_engineer(ENGINEERS[0], password)
    sessions = {ENGINEERS[0]: accounts.login(ENGINEERS[0], password)}
    if ENGINEERS[1] not in {u.username for u in accounts.list_users()}:
        accounts.request_add(ENGINEERS[1], ["engineer"], by=sessions[ENGINEERS[0]], password=FIRST_PASSWORD)
        accounts.change_password(ENGINEERS[1], FIRST_PASSWORD, password)
    sessions[ENGINEERS[1]] = accounts.login(ENGINEERS[1], password)
    for name, (roles, rank) in people.items():
        request = accounts.request_add(name, list(roles), by=sessions[ENGINEERS[0]], rank=rank)
        accounts.confirm(request.id, by=sessions[ENGINEERS[1]], password=FIRST_PASSWORD)
        accounts.change_password(name, FIRST_PASSWORD, password)
        sessions[name] = accounts.login(name, password)
    return sessions


def library_events(ws: Workspace, name: str | None = None) -> list[dict[str, object]]:
    """The audit log's library events (``library.<action>``) in order, optionally of one library by name."""
    from engine import audit

    out: list[dict[str, object]] = []
    with ws.reading() as conn:
        for event in audit.events(conn):
            if not event.action.startswith("library."):
                continue
            detail = dict(event.details)
            library = detail.pop("name", None)
            if name is None or library == name:
                out.append(
                    {
                        "at": event.at,
                        "actor": event.actor,
                        "action": event.action.removeprefix("library."),
                        "library": library,
                        "detail": detail,
                    }
                )
    return out
