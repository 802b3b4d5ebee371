"""The audit tables' migrations: version 2 takes the private signing key out of the database.

Version 1 kept the terminal's Ed25519 private key in the workspace database
(``audit_terminal_key``), so anyone holding the workspace key could re-sign a forged log.
Migration 2 keeps only the public key (``audit_keys``, as the log's first key) and drops the
table; the workspace's connection has ``secure_delete`` on, so the dropped key's bytes are
overwritten rather than left in free pages the workspace key would decrypt.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import audit, schema, workspace
from engine.audit.checkpoints import checkpoint_statement
from engine.audit.signing import key_id_of, raw_public_bytes
from engine.audit.store import ALL_TRIGGERS, GENESIS_HASH
from engine.errors import AuditError
from engine.security.keys import WorkspaceKey

V1_EVENTS = 25
V1_EVERY = 10  # version 1 signed a checkpoint every 10 events, so events 21-25 were never signed


class TickingClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def write_v1_log(conn: Any) -> Ed25519PrivateKey:
    """What version 1 wrote: its private key in the database, events, a checkpoint every 10 signed with that key."""
    private = Ed25519PrivateKey.generate()
    public = raw_public_bytes(private.public_key())
    key_id = key_id_of(private.public_key())
    clock = TickingClock()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO audit_terminal_key (id, key_id, public_key, private_key, created_at) VALUES (1, ?, ?, ?, ?)",
        (key_id, public, private.private_bytes_raw(), "2024-06-01T09:00:00.000000Z"),
    )
    prev_digest = GENESIS_HASH
    for i in range(1, V1_EVENTS + 1):
        event = audit.append(conn, "alice", "case.search", subjects={"case": f"C-{i}"}, clock=clock)
        if i % V1_EVERY == 0:
            number, at = i // V1_EVERY, audit.format_utc(clock())
            statement = checkpoint_statement(number, event.seq, event.hash, at, key_id, prev_digest)
            signature = private.sign(statement)
            conn.execute(
                "INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (number, event.seq, event.hash, at, key_id, prev_digest, signature),
            )
            prev_digest = audit.Checkpoint(number, event.seq, event.hash, at, key_id, prev_digest, signature).digest
    conn.execute("COMMIT")
    return private


def test_the_audit_migrations_are_numbered_for_the_registry() -> None:
    assert ("audit", "engine.audit.store") in schema.DOMAINS
    (plan,) = schema.registry((("audit", "engine.audit.store"),))
    assert [(m.version, m.name) for m in plan[1]] == [
        (1, "audit events, signed checkpoints, terminal signing key"),
        (2, "audit private key out of the database; public keys only"),
    ]


@pytest.mark.parametrize(
    ("secure_delete", "left_behind"),
    [("ON", False), ("OFF", True)],
    ids=["as the workspace connects: nothing left", "control: without secure_delete the key would stay in free pages"],
)
def test_migration_2_takes_the_private_key_out(tmp_path: Path, secure_delete: str, left_behind: bool) -> None:
    path = tmp_path / "ws.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA secure_delete = {secure_delete}")
    conn.execute("PRAGMA journal_mode = WAL")
    assert schema.migrate(conn, [("audit", audit.MIGRATIONS[:1])]) == [("audit", 1, audit.MIGRATIONS[0].name)]
    private = write_v1_log(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = private.private_bytes_raw()
    assert raw in path.read_bytes(), "version 1 kept the private key in the database"

    assert schema.migrate(conn, [("audit", audit.MIGRATIONS)]) == [("audit", 2, audit.MIGRATIONS[1].name)]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "audit_terminal_key" not in tables and "audit_keys" in tables
    assert conn.execute("SELECT key_id, public_key, introduced_seq, added_at FROM audit_keys").fetchall() == [
        (key_id_of(private.public_key()), raw_public_bytes(private.public_key()), 0, "2024-06-01T09:00:00.000000Z")
    ]
    triggers = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == set(ALL_TRIGGERS)
    with pytest.raises(sqlite3.IntegrityError, match="audit keys cannot be deleted"):
        conn.execute("DELETE FROM audit_keys")
    conn.close()
    assert (raw in path.read_bytes()) is left_behind


def test_a_version_1_log_is_checked_against_the_key_recorded_then(tmp_path: Path) -> None:
    """The migrated log verifies against the public key the auditor recorded under version 1, up to where v1 signed.

    Version 1 signed every 10 events; the 5 it left unsigned are reported, never silently accepted.
    """
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.apply_all(conn, audit.MIGRATIONS[:1])
    private = write_v1_log(conn)
    schema.apply_all(conn, audit.MIGRATIONS[1:])
    result = audit.verify(conn, private.public_key())
    assert (result.events, result.checkpoints, result.signed_through) == (V1_EVENTS, 2, 20)
    assert result.problems == [
        "seq 21 to seq 25 follow the last signed head (seq 20): "
        "events written behind the terminal's back, or signed heads deleted"
    ]
    assert audit.current_key(conn).key_id == key_id_of(private.public_key())


def make_v1_workspace(directory: Path, key: WorkspaceKey) -> Ed25519PrivateKey:
    """A workspace as the version before this one left it: every domain current except audit, at version 1."""
    directory.mkdir(mode=0o700)
    (directory / workspace.INDEX_DIR).mkdir(mode=0o700)
    header = workspace.WorkspaceHeader("0123456789abcdef0123456789abcdef", key.kdf, key.check_value())
    conn = workspace._connect(directory / workspace.DB_NAME, key)
    try:
        plan = [(d, migs[:1] if d == "audit" else migs) for d, migs in schema.registry()]
        schema.migrate(conn, plan)
        conn.execute("INSERT INTO workspace_meta (key, value) VALUES ('workspace_id', ?)", (header.workspace_id,))
        private = write_v1_log(conn)
    finally:
        conn.close()
    (directory / workspace.HEADER_NAME).write_text(json.dumps(header.to_json()), encoding="utf-8")
    return private


def test_a_version_1_workspace_is_migrated_when_opened(tmp_path: Path) -> None:
    key = WorkspaceKey.generate()
    private = make_v1_workspace(tmp_path / "ws", key)
    with workspace.Workspace.open(tmp_path / "ws", key) as ws:
        assert ws.schema_versions()["audit"] == 2
        assert ws.query("PRAGMA secure_delete") == [(1,)], "the dropped private key is overwritten, not freed"
        assert ws.query("SELECT name FROM sqlite_master WHERE name = 'audit_terminal_key'") == []
        with ws.reading() as conn:
            assert audit.current_key(conn).key_id == key_id_of(private.public_key())
            assert audit.verify(conn, private.public_key()).signed_through == 20
        assert not ws.records, "the private key is gone: without a key file nothing can be signed"
        with pytest.raises(AuditError, match="opened without the terminal's audit signing key"):
            with ws.transaction() as conn:
                audit.append(conn, "alice", "case.search", clock=ws.clock)
        assert ws.query("SELECT MAX(seq) FROM audit_events") == [(V1_EVENTS,)]
