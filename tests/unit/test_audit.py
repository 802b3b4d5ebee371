"""The audit log: events in the caller's transaction, the chain, signed heads, the signing key file, rotation, access.

Low-level tests run on a bare SQLite connection with the audit tables alone
(``engine.schema.apply_all(conn, audit.MIGRATIONS)``); the workspace, the terminal and the
role-checked access run on real encrypted workspaces (``tests.terminals``).
"""

from __future__ import annotations

import copy
import itertools
import os
import pickle
import sqlite3
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import audit, schema
from engine.audit import GENESIS_HASH, AuditSigningKey, event_hash
from engine.audit.access import EventFilter, pending_key_path
from engine.errors import AuditError, PermissionRefused
from engine.security.keys import WorkspaceKey
from engine.workspace import Workspace
from tests.terminals import make_terminal, new_workspace, provision, reopen


class TickingClock:
    """One second later on every call."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def new_log(conn: Any = None) -> Any:
    """The audit tables alone, on a bare connection (in-memory SQLite unless given one)."""
    conn = conn if conn is not None else sqlite3.connect(":memory:", isolation_level=None)
    schema.apply_all(conn, audit.MIGRATIONS)
    return conn


def started(key: AuditSigningKey | None = None, clock: TickingClock | None = None) -> tuple[Any, AuditSigningKey]:
    """A log started as a new workspace starts it: its first event and head, with ``key``."""
    conn = new_log()
    key = key or AuditSigningKey.generate()
    conn.execute("BEGIN IMMEDIATE")
    audit.start_log(conn, key, "ws-1", clock or TickingClock())
    conn.execute("COMMIT")
    return conn, key


def write(conn: Any, key: AuditSigningKey | None, count: int, clock: Callable[[], datetime]) -> None:
    """One transaction of ``count`` events, signed before it commits, as the workspace does."""
    since = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for i in range(count):
            audit.append(conn, "alice", "case.search", subjects={"case": f"C-{i}"}, details={"i": i}, clock=clock)
        audit.seal(conn, key, clock, since=since)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def finishes(action: Callable[[], object], seconds: float = 5.0) -> object:
    """Run ``action`` in a thread; fail (instead of hanging the suite) if it has not returned in time."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s (a FIFO must be refused, not waited on)"
    return outcome[0]


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
    conn, key = started()
    conn.execute("CREATE TABLE cases (id TEXT PRIMARY KEY, state TEXT)")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO cases VALUES ('C-1', 'approved')")
    audit.append(conn, "ivan", "case.approve", subjects={"case": "C-1"})
    audit.seal(conn, key, since=1)
    assert conn.in_transaction, "neither append nor seal commits"
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == 0
    assert [e.seq for e in audit.events(conn)] == [1]
    assert [c.seq for c in audit.checkpoints(conn)] == [1], "the head rolls back with the event"
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO cases VALUES ('C-1', 'approved')")
    audit.append(conn, "ivan", "case.approve", subjects={"case": "C-1"})
    audit.seal(conn, key, since=1)
    conn.execute("COMMIT")
    assert [e.seq for e in audit.events(conn)] == [1, 2]
    assert audit.verify(conn, key.public_key).ok


def test_append_leaves_a_legacy_mode_transaction_open_for_the_caller(tmp_path: Path) -> None:
    conn = new_log(sqlite3.connect(tmp_path / "a.db"))  # default isolation: implicit transactions
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
            "WHERE seq = 26), 'h')",
            "an event must follow the last one",
        ),
        (f"INSERT INTO audit_events VALUES (27, 't', 'a', 'x.y', '{{}}', '{{}}', '{'1' * 64}', 'h')", "must follow"),
        ("UPDATE audit_checkpoints SET seq = 5", "checkpoints cannot be changed"),
        ("DELETE FROM audit_checkpoints WHERE number = 2", "checkpoints cannot be deleted"),
        (
            "INSERT INTO audit_checkpoints SELECT number + 5, seq, event_hash, at, key_id, prev_digest, signature "
            "FROM audit_checkpoints WHERE number = 1",
            "a checkpoint must follow the last one",
        ),
        ("UPDATE audit_keys SET public_key = zeroblob(32)", "audit keys cannot be changed: rotate to a new key"),
        ("DELETE FROM audit_keys", "audit keys cannot be deleted"),
    ],
)
def test_triggers_keep_the_application_from_altering_the_log(sql: str, message: str) -> None:
    conn, key = started()
    clock = TickingClock()
    for _ in range(5):
        write(conn, key, 5, clock)
    with pytest.raises(sqlite3.IntegrityError, match=message):
        conn.execute(sql)
    assert audit.verify(conn, key.public_key).ok


# Starting a log; signed heads


def test_a_log_starts_with_an_event_naming_its_key_and_a_signed_head() -> None:
    conn, key = started()
    (first,) = audit.events(conn)
    assert (first.seq, first.actor, first.action) == (1, "system", "workspace.create")
    assert first.subjects == {"workspace": "ws-1"} and first.details == {"audit_key_id": key.key_id}
    (stored,) = conn.execute("SELECT key_id, public_key, introduced_seq FROM audit_keys").fetchall()
    assert stored == (key.key_id, key.public_bytes, 0)
    (head,) = audit.checkpoints(conn)
    assert (head.number, head.seq, head.event_hash, head.key_id) == (1, 1, first.hash, key.key_id)
    assert head.prev_digest == GENESIS_HASH and head.signature_valid(key.public_key)
    with pytest.raises(AuditError, match="this workspace's audit log has already started"):
        audit.start_log(conn, key, "ws-1")


def test_every_transaction_that_writes_events_ends_with_a_signed_head() -> None:
    conn, key = started()
    clock = TickingClock()
    for count in (3, 1, 7):
        write(conn, key, count, clock)
    write(conn, key, 0, clock)  # wrote nothing: nothing to sign
    heads = audit.checkpoints(conn)
    assert [(h.number, h.seq) for h in heads] == [(1, 1), (2, 4), (3, 5), (4, 12)]
    assert all(h.prev_digest == p.digest for p, h in itertools.pairwise(heads))
    assert all(h.signature_valid(key.public_key) and h.key_id == key.key_id for h in heads)
    assert audit.last_checkpoint(conn) == heads[-1]
    assert audit.checkpoint(conn, key) == heads[-1], "nothing new: the covering head is returned"
    assert audit.seal(conn, key) is None
    result = audit.verify(conn, key.public_key)
    assert (result.ok, result.events, result.checkpoints, result.signed_through) == (True, 12, 4, 12)
    assert result.head == (12, heads[-1].event_hash) and result.keys == (key.key_id,)


def test_nothing_to_sign_in_an_empty_log() -> None:
    conn = new_log()
    assert audit.checkpoint(conn, AuditSigningKey.generate()) is None
    assert audit.seal(conn, None) is None
    assert audit.last_checkpoint(conn) is None
    with pytest.raises(AuditError, match="this workspace records no audit key: it was damaged"):
        audit.current_key(conn)


def test_events_without_the_signing_key_are_refused_and_roll_back() -> None:
    conn, _ = started()
    with pytest.raises(AuditError, match="opened without the terminal's audit signing key, so nothing can be recorded"):
        write(conn, None, 2, TickingClock())
    assert [e.seq for e in audit.events(conn)] == [1]


def test_events_signed_with_another_key_are_refused_and_roll_back() -> None:
    conn, key = started()
    other = AuditSigningKey.generate()
    with pytest.raises(AuditError, match=f"records key {key.key_id[:16]}, the file holds {other.key_id[:16]}"):
        write(conn, other, 2, TickingClock())
    assert [e.seq for e in audit.events(conn)] == [1]
    assert audit.verify(conn, key.public_key).ok


# Keys


def test_the_public_key_is_exported_in_every_form_an_auditor_may_hold() -> None:
    conn, key = started()
    assert audit.current_key(conn).key_id == key.key_id == audit.key_id_of(key.public_key)
    pem = audit.export_public_key_pem(conn)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    raw = key.public_bytes
    for form in (pem, pem.encode(), audit.terminal_public_key(conn), raw, raw.hex()):
        assert audit.key_id_of(audit.load_public_key(form)) == key.key_id
    assert audit.public_key_pem(key.public_key) == pem


@pytest.mark.parametrize("junk", [b"not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_unusable_public_keys_are_refused(junk: Any) -> None:
    with pytest.raises(AuditError, match="neither PEM nor 32 raw bytes"):
        audit.load_public_key(junk)


def test_a_non_ed25519_public_key_is_refused() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(AuditError, match="not an Ed25519 key"):
        audit.load_public_key(pem)


def test_rotation_hands_signing_over_signed_by_the_old_key() -> None:
    conn, old = started()
    clock = TickingClock()
    write(conn, old, 3, clock)
    new = AuditSigningKey.generate()
    conn.execute("BEGIN IMMEDIATE")
    seq = audit.rotate_key(conn, "eng1", old, new, "yearly rotation", clock)
    conn.execute("COMMIT")
    assert seq == 5
    rotation = next(audit.events(conn, 5, 5))
    assert (rotation.actor, rotation.action) == ("eng1", "audit.key_rotated")
    assert rotation.details == {"old_key_id": old.key_id, "new_key_id": new.key_id, "reason": "yearly rotation"}
    assert audit.last_checkpoint(conn) is not None
    assert (audit.last_checkpoint(conn).seq, audit.last_checkpoint(conn).key_id) == (5, old.key_id)  # type: ignore[union-attr]
    assert audit.current_key(conn).key_id == new.key_id and audit.current_key(conn).introduced_seq == 5
    with pytest.raises(AuditError, match="does not belong to this workspace"):
        write(conn, old, 1, clock)  # the retired key signs nothing more
    write(conn, new, 2, clock)
    for pinned in (old.public_key, new.public_key):
        result = audit.verify(conn, pinned)
        assert (result.ok, result.signed_through, result.keys) == (True, 7, (old.key_id, new.key_id)), result.problems


def test_rotation_is_refused_with_the_wrong_keys() -> None:
    conn, key = started()
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(AuditError, match="the current audit key file does not belong to this workspace"):
        audit.rotate_key(conn, "eng1", AuditSigningKey.generate(), AuditSigningKey.generate(), "x")
    with pytest.raises(AuditError, match="the new audit key is the current one"):
        audit.rotate_key(conn, "eng1", key, key, "x")
    conn.execute("ROLLBACK")


# The signing key file


def test_the_signing_key_file_round_trips_owner_only(tmp_path: Path) -> None:
    key = AuditSigningKey.generate()
    path = tmp_path / "audit.key"
    key.write_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = AuditSigningKey.read_file(path)
    assert again.key_id == key.key_id
    assert again.public_key.verify(again.sign(b"m"), b"m") is None
    with pytest.raises(AuditError, match="already exists: choose a new path; it is never overwritten"):
        AuditSigningKey.generate().write_file(path)
    assert AuditSigningKey.read_file(path).key_id == key.key_id


def test_the_signing_key_never_shows_its_private_half() -> None:
    key = AuditSigningKey.generate()
    assert "private" in repr(key) and key.key_id[:16] in repr(key) and str(key) == repr(key)
    with pytest.raises(TypeError, match="cannot be pickled or copied"):
        pickle.dumps(key)
    with pytest.raises(TypeError, match="cannot be pickled or copied"):
        copy.deepcopy(key)


def other_kind_of_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (os.urandom(32), 0o600, "does not hold an audit signing key: give the file 'rfr workspace init' made"),
        (b"-----BEGIN PUBLIC KEY-----\n", 0o600, "does not hold an audit signing key"),
        (other_kind_of_key(), 0o600, "holds another kind of key, not Ed25519"),
        (b"x" * 5000, 0o600, "is larger than 4,096 bytes: this is not the right file"),
        (b"", 0o640, "can be read by other users: run 'chmod 600"),
    ],
    ids=["a workspace key file", "a public key", "an EC key", "too large", "readable by others"],
)
def test_unusable_signing_key_files_are_refused(tmp_path: Path, content: bytes, mode: int, message: str) -> None:
    path = tmp_path / "audit.key"
    path.write_bytes(content)
    path.chmod(mode)
    with pytest.raises(AuditError, match=message):
        AuditSigningKey.read_file(path)


def test_a_signing_key_fifo_symlink_or_folder_is_refused_without_hanging(tmp_path: Path) -> None:
    real = tmp_path / "audit.key"
    AuditSigningKey.generate().write_file(real)
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    for path, message in (
        (fifo, "is not a regular file: give the file itself"),
        (link, "is a symbolic link: give the real file"),
        (tmp_path, "is not a regular file"),
        (tmp_path / "absent.key", "does not exist: check the path"),
    ):
        error = finishes(lambda path=path: AuditSigningKey.read_file(path))  # type: ignore[misc]
        assert isinstance(error, AuditError) and message in str(error), error
        assert f"audit signing key file {path}" in str(error)


def test_the_database_never_holds_the_private_key(tmp_path: Path) -> None:
    """The whole unencrypted database file, as the workspace key would show it, has no trace of the private key."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes_raw()
    pem_body = b"".join(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).splitlines()[1:-1]
    )
    key = AuditSigningKey(private)
    path = tmp_path / "plain.db"
    conn = new_log(sqlite3.connect(path, isolation_level=None))
    conn.execute("BEGIN IMMEDIATE")
    audit.start_log(conn, key, "ws-1")
    conn.execute("COMMIT")
    write(conn, key, 5, TickingClock())
    new = AuditSigningKey.generate()
    conn.execute("BEGIN IMMEDIATE")
    audit.rotate_key(conn, "eng1", key, new, "rotation")
    conn.execute("COMMIT")
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in conn.execute(f"SELECT * FROM {table}"):
            for value in row:
                data = value if isinstance(value, bytes) else str(value).encode()
                assert raw not in data and raw.hex().encode() not in data and pem_body not in data
    conn.close()
    content = path.read_bytes()
    assert key.public_bytes in content, "the check can see key material: the public key is stored"
    assert raw not in content and pem_body not in content


# What may go into an event


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"details": {"password": "x"}}, "secrets and biometric data never go in the audit log"),
        ({"details": {"new_passphrase": "x"}}, "never go in the audit log"),
        ({"details": {"private_key": "x"}}, "never go in the audit log"),
        ({"details": {"nested": {"probe_template": [1]}}}, r"details \.nested\.probe_template"),
        ({"details": {"embedding": "AAEC"}}, "never go in the audit log"),
        ({"details": {"templates": 1.5}}, "never go in the audit log"),
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
        conn,
        "alice",
        "case.search",
        details={"scores": [0.91, 0.5], "note": "naïve café", "n": None, "ok": True, "templates": 12},
    )
    assert (
        next(iter(audit.events(conn))).details
        == event.details
        == {"scores": [0.91, 0.5], "note": "naïve café", "n": None, "ok": True, "templates": 12}
    ), "a count of templates is not biometric data"


# Encrypted database


def test_works_on_an_encrypted_sqlcipher_database(tmp_path: Path) -> None:
    path = tmp_path / "ws.db"
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA key = \"x'" + "22" * 32 + "'\"")
    new_log(conn)
    key = AuditSigningKey.generate()
    conn.execute("BEGIN IMMEDIATE")
    audit.start_log(conn, key, "ws-1")
    conn.execute("COMMIT")
    write(conn, key, 12, TickingClock())
    assert audit.verify(conn, key.public_key).ok
    conn.execute("DROP TRIGGER audit_events_no_update")
    conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 4")
    assert audit.verify(conn, key.public_key).problems == [
        "append-only protection removed: trigger audit_events_no_update is missing",
        "seq 4: hash mismatch (event edited)",
    ]
    conn.close()
    assert b"case.search" not in path.read_bytes()


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
    st.booleans(),  # the transaction ends after this event
)


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(event_strategy, max_size=40))
def test_any_sequence_of_transactions_verifies_and_is_signed_to_the_end(
    batch: list[tuple[str, str, dict[str, str], dict[str, Any], bool]],
) -> None:
    clock = TickingClock()
    conn, key = started(clock=clock)
    appended = list(audit.events(conn))
    transactions = 1
    conn.execute("BEGIN IMMEDIATE")
    since = 1
    for actor, action, subjects, details, commit in batch:
        appended.append(audit.append(conn, actor, action, subjects=subjects, details=details, clock=clock))
        if commit:
            audit.seal(conn, key, clock, since=since)
            conn.execute("COMMIT")
            transactions += 1
            since = appended[-1].seq
            conn.execute("BEGIN IMMEDIATE")
    audit.seal(conn, key, clock, since=since)
    conn.execute("COMMIT")
    transactions += bool(batch) and not batch[-1][4]
    result = audit.verify(conn, key.public_key)
    assert result.ok, result.problems
    assert (result.events, result.signed_through, result.checkpoints) == (len(batch) + 1, len(batch) + 1, transactions)
    assert result.head == (appended[-1].seq, appended[-1].hash)
    assert list(audit.events(conn)) == appended
    assert all(e.action != "audit.unsigned_events" for e in appended)


# The workspace: records only with the terminal's key


def test_a_workspace_opened_without_its_audit_key_reads_but_records_nothing(tmp_path: Path) -> None:
    key = WorkspaceKey.generate()
    with new_workspace(tmp_path / "ws", key=key):
        pass
    with Workspace.open(tmp_path / "ws", key) as ws:
        assert not ws.records and ws.audit_public_key is None
        with pytest.raises(AuditError, match="opened without the terminal's audit signing key"):
            with ws.transaction() as conn:
                conn.execute("INSERT INTO workspace_meta (key, value) VALUES ('note', 'x')")
                audit.append(conn, "alice", "case.search", clock=ws.clock)
        assert ws.query("SELECT value FROM workspace_meta WHERE key = 'note'") == [], "the change rolled back"
        with ws.transaction() as conn:  # a transaction that records nothing needs no key
            conn.execute("INSERT INTO workspace_meta (key, value) VALUES ('note', 'y')")
        with ws.reading() as conn:
            assert [e.action for e in audit.events(conn)] == ["workspace.create"]


def test_a_workspace_refuses_an_audit_key_that_is_not_its_own(tmp_path: Path) -> None:
    key = WorkspaceKey.generate()
    with new_workspace(tmp_path / "ws", key=key) as ws:
        mine = ws.audit_key_id
    stranger = AuditSigningKey.generate()
    with pytest.raises(AuditError, match=f"it records key {(mine or '')[:16]}, the file holds {stranger.key_id[:16]}"):
        Workspace.open(tmp_path / "ws", key, audit_key=stranger)


def test_a_workspace_rotation_leaves_only_the_new_key_able_to_record(tmp_path: Path) -> None:
    key = WorkspaceKey.generate()
    old = AuditSigningKey.generate()
    new = AuditSigningKey.generate()
    with Workspace.create(tmp_path / "ws", key, audit_key=old) as ws:
        assert ws.rotate_audit_key("eng1", new, "yearly rotation") == 2
        assert ws.audit_key_id == new.key_id
        with ws.transaction() as conn:
            audit.append(conn, "alice", "case.search", clock=ws.clock)
    with pytest.raises(AuditError, match="does not belong to this workspace"):
        Workspace.open(tmp_path / "ws", key, audit_key=old)
    with Workspace.open(tmp_path / "ws", key, audit_key=new) as ws, ws.reading() as conn:
        for pinned in (old.public_key, new.public_key):
            result = audit.verify(conn, pinned)
            assert (result.ok, result.events, result.signed_through) == (True, 3, 3), result.problems


# Role-checked, recorded access through the terminal


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Any:
    terminal = make_terminal(tmp_path_factory.mktemp("audit") / "ws")
    sessions = provision(
        terminal,
        {"aud": (["auditor"], None), "alice": (["rfr_user"], "Constable"), "ivan": (["approver"], "Inspector")},
    )
    yield terminal, sessions
    terminal.close()


@pytest.mark.parametrize(
    ("who", "doing", "message"),
    [
        ("alice", "verify", "audit verification refused: it needs the Auditor or Engineer role; alice holds neither"),
        ("ivan", "verify", "audit verification refused: it needs the Auditor or Engineer role; ivan holds neither"),
        ("eng1", "events", "reading the audit log refused: it needs the Auditor role; eng1 lacks it"),
        ("alice", "public_key", "exporting the audit public key refused: it needs the Auditor or Engineer role"),
        ("aud", "rotate", "rotating the audit key refused: it needs the Engineer role; aud lacks it"),
    ],
)
def test_only_auditors_and_engineers_touch_the_log(office: Any, who: str, doing: str, message: str) -> None:
    terminal, sessions = office
    calls: dict[str, Callable[[], object]] = {
        "verify": lambda: terminal.audit.verify(sessions[who]),
        "events": lambda: terminal.audit.events(sessions[who]),
        "public_key": lambda: terminal.audit.public_key_pem(sessions[who]),
        "rotate": lambda: terminal.audit.rotate_key(sessions[who], terminal.config.audit_key_file, "because"),
    }
    with pytest.raises(PermissionRefused, match=message):
        calls[doing]()


def test_each_look_at_the_log_is_itself_recorded(office: Any) -> None:
    terminal, sessions = office
    verified = terminal.audit.verify(sessions["eng1"])
    assert verified.ok and verified.head is not None, verified.problems
    by_auditor = terminal.audit.verify(
        sessions["aud"], public_key=terminal.audit.public_key_pem(sessions["aud"]).encode()
    )
    assert by_auditor.ok and by_auditor.head is not None and by_auditor.head[0] == verified.head[0] + 1
    assert terminal.audit.verify(sessions["aud"], expect=verified.head).ok
    found = terminal.audit.events(sessions["aud"], EventFilter(action="audit"), limit=10)
    assert [(e.actor, e.action) for e in found] == [
        ("aud", "audit.verify"),
        ("aud", "audit.verify"),
        ("eng1", "audit.verify"),
    ]
    assert found[0].details["expected"] == f"{verified.head[0]}:{verified.head[1]}"
    assert found[1].details["key"] == "given by the auditor" and found[2].details["key"] == "the terminal's own"
    assert all(e.details["ok"] is True and e.details["problems"] == 0 for e in found)
    views = terminal.audit.events(sessions["aud"], EventFilter(actor="aud", action="audit.view"), limit=5)
    assert views[0].details == {"filter": {"action": "audit"}, "events": 3}


def test_rotating_the_key_replaces_the_terminals_key_file(tmp_path: Path) -> None:
    terminal = make_terminal(tmp_path / "ws")
    sessions = provision(terminal, {"aud": (["auditor"], None)})
    key_file = terminal.config.audit_key_file
    old = AuditSigningKey.read_file(key_file)
    old_pem = terminal.audit.public_key_pem(sessions["aud"])
    with pytest.raises(AuditError, match=r"rotating the audit key needs a reason \(--reason TEXT\)"):
        terminal.audit.rotate_key(sessions["eng1"], key_file, "   ")
    seq = terminal.audit.rotate_key(sessions["eng1"], key_file, "yearly rotation")
    new = AuditSigningKey.read_file(key_file)
    assert new.key_id != old.key_id and new.key_id == terminal.ws.audit_key_id
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and not pending_key_path(key_file).exists()
    rotation = terminal.audit.events(sessions["aud"], EventFilter(action="audit.key_rotated"))
    assert [(e.seq, e.actor, e.details["reason"]) for e in rotation] == [(seq, "eng1", "yearly rotation")]
    assert terminal.audit.verify(sessions["aud"], public_key=old_pem.encode()).ok
    assert terminal.audit.verify(sessions["aud"]).ok  # the terminal's own (new) key
    terminal.close()
    with reopen(tmp_path / "ws") as again:
        session = again.sign_in("aud", "correct horse battery")
        assert again.audit.verify(session, public_key=old_pem.encode()).ok


def test_a_rotation_interrupted_before_the_file_was_replaced_is_completed_at_the_next_open(tmp_path: Path) -> None:
    terminal = make_terminal(tmp_path / "ws")
    key_file = terminal.config.audit_key_file
    new = AuditSigningKey.generate()
    new.write_file(pending_key_path(key_file))
    terminal.ws.rotate_audit_key("eng1", new, "rotation cut short")  # recorded; then the power went
    terminal.close()
    with reopen(tmp_path / "ws") as again:
        assert again.ws.audit_key_id == new.key_id
    assert AuditSigningKey.read_file(key_file).key_id == new.key_id
    assert not pending_key_path(key_file).exists()
