"""The audit log: appending inside the caller's transaction, the chain, checkpoints, keys, what details may hold."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import audit
from engine.audit import GENESIS_HASH, event_hash
from engine.errors import AuditError


class TickingClock:
    """One second later on every call."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def new_log() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    audit.create_schema(conn)
    return conn


def fill(conn: Any, count: int, every: int | None = 10) -> None:
    clock = TickingClock()
    conn.execute("BEGIN")
    for i in range(count):
        audit.append(
            conn,
            f"user{i % 3}",
            "case.approve",
            subjects={"case": f"C-{i}"},
            details={"i": i},
            clock=clock,
            checkpoint_every=every,
        )
    conn.execute("COMMIT")


def public_key(conn: Any) -> Any:
    return audit.terminal_public_key(conn)


# Appending


def test_events_chain_from_genesis() -> None:
    conn = new_log()
    first = audit.append(conn, "alice", "case.create", subjects={"case": "C-1"}, details={"use_case": "x"})
    second = audit.append(conn, "bob", "case.approve", subjects={"case": "C-1", "users": ["alice", "bob"]})
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert first.hash == event_hash(1, first.at, "alice", "case.create", '{"case":"C-1"}', '{"use_case":"x"}', "0" * 64)
    stored = list(audit.events(conn))
    assert stored == [first, second]
    assert list(audit.events(conn, 2, 2)) == [second]
    assert first.at.endswith("Z") and len(first.at) == len("2025-03-01T09:00:01.000000Z")


def test_append_commits_with_the_callers_transaction_or_not_at_all() -> None:
    conn = new_log()
    conn.execute("CREATE TABLE cases (id TEXT PRIMARY KEY, state TEXT)")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO cases VALUES ('C-1', 'approved')")
    audit.append(conn, "ivan", "case.approve", subjects={"case": "C-1"})
    assert conn.in_transaction, "append must not commit"
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == 0
    assert list(audit.events(conn)) == []
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO cases VALUES ('C-1', 'approved')")
    audit.append(conn, "ivan", "case.approve", subjects={"case": "C-1"})
    conn.execute("COMMIT")
    assert [e.seq for e in audit.events(conn)] == [1]


def test_append_leaves_a_legacy_mode_transaction_open_for_the_caller(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "a.db")  # default isolation: implicit transactions
    audit.create_schema(conn)
    audit.append(conn, "ivan", "case.approve")
    assert conn.in_transaction
    conn.rollback()
    assert list(audit.events(conn)) == []


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2", "append-only: events cannot be changed"),
        ("DELETE FROM audit_events WHERE seq = 3", "append-only: events cannot be deleted"),
        ("DELETE FROM audit_events", "append-only: events cannot be deleted"),
        (
            "INSERT INTO audit_events VALUES (99, 't', 'a', 'x.y', '{}', '{}', (SELECT hash FROM audit_events "
            "WHERE seq = 25), 'h')",
            "an event must follow the last one",
        ),
        (f"INSERT INTO audit_events VALUES (26, 't', 'a', 'x.y', '{{}}', '{{}}', '{'1' * 64}', 'h')", "must follow"),
        ("UPDATE audit_checkpoints SET seq = 5", "checkpoints cannot be changed"),
        ("DELETE FROM audit_checkpoints WHERE number = 2", "checkpoints cannot be deleted"),
        (
            "INSERT INTO audit_checkpoints SELECT number + 5, seq, event_hash, at, key_id, prev_digest, signature "
            "FROM audit_checkpoints WHERE number = 1",
            "a checkpoint must follow the last one",
        ),
    ],
)
def test_triggers_keep_the_application_from_altering_the_log(sql: str, message: str) -> None:
    conn = new_log()
    fill(conn, 25)
    with pytest.raises(sqlite3.IntegrityError, match=message):
        conn.execute(sql)
    assert audit.verify(conn, public_key(conn)).ok


# Checkpoints and keys


def test_checkpoints_every_n_events_and_on_demand() -> None:
    conn = new_log()
    assert audit.checkpoint(conn) is None, "nothing to sign in an empty log"
    fill(conn, 25, every=10)
    made = audit.checkpoints(conn)
    assert [(c.number, c.seq) for c in made] == [(1, 10), (2, 20)]
    assert made[1].prev_digest == made[0].digest and made[0].prev_digest == GENESIS_HASH
    on_demand = audit.checkpoint(conn)
    assert on_demand is not None and (on_demand.number, on_demand.seq) == (3, 25)
    assert audit.checkpoint(conn) == on_demand, "no new events: the covering checkpoint is returned"
    assert len(audit.checkpoints(conn)) == 3
    key = public_key(conn)
    assert all(c.signature_valid(key) and c.key_id == audit.key_id_of(key) for c in audit.checkpoints(conn))
    result = audit.verify(conn, key)
    assert (result.ok, result.events, result.checkpoints, result.signed_through) == (True, 25, 3, 25)


def test_no_checkpoints_when_disabled() -> None:
    conn = new_log()
    fill(conn, 30, every=None)
    assert audit.checkpoints(conn) == []


def test_the_terminal_key_is_made_once_and_exported() -> None:
    conn = new_log()
    with pytest.raises(AuditError, match="no terminal signing key yet"):
        audit.terminal_public_key(conn)
    key_id = audit.ensure_terminal_key(conn)
    assert audit.ensure_terminal_key(conn) == key_id
    pem = audit.export_public_key_pem(conn)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pem
    for form in (pem, pem.encode(), audit.terminal_public_key(conn)):
        assert audit.key_id_of(audit.load_public_key(form)) == key_id
    raw = bytes(conn.execute("SELECT public_key FROM audit_terminal_key").fetchone()[0])
    assert audit.key_id_of(audit.load_public_key(raw)) == key_id
    assert audit.key_id_of(audit.load_public_key(raw.hex())) == key_id


@pytest.mark.parametrize("junk", [b"not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_unusable_public_keys_are_refused(junk: Any) -> None:
    with pytest.raises(AuditError, match="neither PEM nor 32 raw bytes"):
        audit.load_public_key(junk)


def test_a_non_ed25519_public_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(AuditError, match="not an Ed25519 key"):
        audit.load_public_key(pem)


# What may go into an event


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"details": {"password": "x"}}, "secrets and biometric data never go in the audit log"),
        ({"details": {"new_passphrase": "x"}}, "never go in the audit log"),
        ({"details": {"nested": {"probe_template": [1]}}}, r"details \.nested\.probe_template"),
        ({"details": {"embedding_id": 3}}, "never go in the audit log"),
        ({"details": {"scores": [0.1] * 17}}, "looks like biometric data"),
        ({"details": {"photo": b"\xff\xd8"}}, "bytes cannot be recorded"),
        ({"details": {"score": float("nan")}}, "not a finite number"),
        ({"details": {1: "x"}}, "keys must be text"),
        ({"subjects": {"Case": "C-1"}}, "must be a lowercase name"),
        ({"subjects": {"case": 1.5}}, "ids are text or whole numbers"),
    ],
)
def test_details_never_hold_secrets_or_biometrics(kwargs: dict[str, Any], message: str) -> None:
    conn = new_log()
    with pytest.raises(ValueError, match=message):
        audit.append(conn, "alice", "case.create", **kwargs)
    assert list(audit.events(conn)) == []


@pytest.mark.parametrize(
    ("actor", "action"), [("", "case.create"), ("a" * 65, "case.create"), ("alice", "approve"), ("alice", "Case.X")]
)
def test_actor_and_action_are_checked(actor: str, action: str) -> None:
    with pytest.raises(ValueError, match=r"audit (actor|action)"):
        audit.append(new_log(), actor, action)


def test_short_score_lists_and_plain_values_are_fine() -> None:
    conn = new_log()
    event = audit.append(
        conn, "alice", "case.search", details={"scores": [0.91, 0.5], "note": "naïve café", "n": None, "ok": True}
    )
    assert (
        next(iter(audit.events(conn))).details
        == event.details
        == {"scores": [0.91, 0.5], "note": "naïve café", "n": None, "ok": True}
    )


# Encrypted database


def test_works_on_an_encrypted_sqlcipher_database(tmp_path: Path) -> None:
    path = tmp_path / "ws.db"
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA key = \"x'" + "22" * 32 + "'\"")
    audit.create_schema(conn)
    fill(conn, 12, every=5)
    assert audit.verify(conn, audit.terminal_public_key(conn)).ok
    conn.execute("DROP TRIGGER audit_events_no_update")
    conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 4")
    assert "seq 4: hash mismatch (event edited)" in audit.verify(conn, audit.terminal_public_key(conn)).problems
    conn.close()
    assert b"case.approve" not in path.read_bytes()


# Properties


event_strategy = st.tuples(
    st.sampled_from(["alice", "bob", "ivan.smith", "system"]),
    st.sampled_from(["case.create", "case.submit", "case.approve", "user.sign_in", "audit.export"]),
    st.dictionaries(st.sampled_from(["case", "user", "library"]), st.text(min_size=1, max_size=8), max_size=2),
    st.dictionaries(
        st.sampled_from(["reason", "count", "flags", "ratio"]),
        st.one_of(
            st.text(max_size=20),
            st.integers(),
            st.lists(st.text(max_size=5), max_size=3),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=3,
    ),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(event_strategy, max_size=40), every=st.sampled_from([None, 1, 3, 7, 50]))
def test_any_sequence_of_events_verifies(
    batch: list[tuple[str, str, dict[str, str], dict[str, Any], bool]], every: int | None
) -> None:
    conn = new_log()
    clock = TickingClock()
    audit.ensure_terminal_key(conn)
    appended = []
    for actor, action, subjects, details, sign_now in batch:
        conn.execute("BEGIN")
        appended.append(
            audit.append(conn, actor, action, subjects=subjects, details=details, clock=clock, checkpoint_every=every)
        )
        if sign_now:
            audit.checkpoint(conn, clock=clock)
        conn.execute("COMMIT")
    result = audit.verify(conn, audit.terminal_public_key(conn))
    assert result.ok, result.problems
    assert result.events == len(batch)
    assert list(audit.events(conn)) == appended
    if batch and (batch[-1][4] or every == 1):
        assert result.signed_through == len(batch)


def test_verify_with_another_terminals_key_fails() -> None:
    conn = new_log()
    fill(conn, 20)
    other = Ed25519PrivateKey.generate().public_key()
    result = audit.verify(conn, other)
    assert not result.ok
    assert result.problems[0].startswith("the workspace's terminal key")
    assert sum("forged checkpoint" in p for p in result.problems) == 2
