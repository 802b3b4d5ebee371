"""The audit, users and policy tables install through the workspace's migration runner, on an encrypted workspace."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine import audit, schema, workspace
from engine.policy import load_default_policy
from engine.policy import store as policy_store
from engine.security import users
from engine.security.keys import KdfSpec, WorkspaceKey
from engine.security.users import WORKSPACE_ADMIN, Accounts, ScryptParams

MY_DOMAINS = (
    ("audit", "engine.audit.store"),
    ("users", "engine.security.users"),
    ("policy", "engine.policy.store"),
)
# As the lead wires them: appended to engine.schema.DOMAINS (a no-op here once they are).
WIRED = schema.DOMAINS + tuple(d for d in MY_DOMAINS if d not in schema.DOMAINS)


def test_migrations_are_numbered_for_the_registry() -> None:
    plan = schema.registry(MY_DOMAINS)
    assert [(domain, [m.version for m in migrations]) for domain, migrations in plan] == [
        ("audit", [1]),
        ("users", [1]),
        ("policy", [1]),
    ]


def test_on_a_real_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def wired_migrate(conn: Any) -> None:
        schema.migrate(conn, schema.registry(WIRED))

    monkeypatch.setattr(workspace, "_migrate", wired_migrate)
    key = WorkspaceKey.from_passphrase("a workspace passphrase", KdfSpec.new_scrypt(n=2**10))
    with workspace.Workspace.create(tmp_path / "ws", key) as ws:
        assert {d: v for d, v in ws.schema_versions().items() if d in dict(MY_DOMAINS)} == {
            "audit": 1,
            "users": 1,
            "policy": 1,
        }
        triggers = {name for (name,) in ws.query("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert set(audit.store.TRIGGERS) <= triggers
        conn = ws._require_open()
        policy = load_default_policy()
        accounts = Accounts(
            conn, policy, scrypt=ScryptParams(n=2**10), transaction=ws.transaction, clock=lambda: datetime.now(UTC)
        )
        accounts.add_user("ivan", "correct horse battery", ["approver"], rank="Inspector", by=WORKSPACE_ADMIN)
        session = accounts.login("ivan", "correct horse battery")
        with ws.transaction() as tx:
            accounts.require_reauthentication(session, users.ReauthPurpose.APPROVE)
            policy_store.record_policy(tx, policy)
            audit.append(tx, "ivan", "case.approve", subjects={"case": "C-1"}, details={"policy": policy.sha256})
        with ws.transaction() as tx:
            audit.checkpoint(tx)
        pem = audit.export_public_key_pem(conn)
    with workspace.Workspace.open(tmp_path / "ws", key) as ws:
        result = audit.verify(ws._require_open(), pem)
        assert result.ok and result.events == 3 and result.signed_through == 3, result
        assert [e.action for e in audit.events(ws._require_open())] == ["user.add", "user.sign_in", "case.approve"]
