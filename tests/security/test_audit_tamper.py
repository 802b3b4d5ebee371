"""Tampering with the audit log directly in the database: verify names each attack and where it happened.

Attack cases are a table (python-tuf style): a name, the tampering an insider with the
database key could do with plain SQL, and the exact problems ``verify`` must report.
The attacker drops the append-only triggers first and, unless the case is about the
triggers, puts them back afterwards to cover their tracks; so the expected problems
are exactly those the tampering itself leaves.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from engine import audit
from engine.audit import event_hash
from engine.audit.checkpoints import checkpoint_statement
from engine.audit.store import GENESIS_HASH, TRIGGERS

EVENTS = 34  # checkpoints every 10: events 31-34 are protected by the chain only
COLUMNS = "seq, at, actor, action, subjects, details, prev_hash, hash"


class TickingClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def build(events: int = EVENTS, every: int = 10) -> tuple[sqlite3.Connection, bytes]:
    """A workspace log and the terminal's public key as the auditor exported it beforehand."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    audit.create_schema(conn)
    clock = TickingClock()
    audit.ensure_terminal_key(conn, clock)
    conn.execute("BEGIN")
    for i in range(1, events + 1):
        audit.append(
            conn,
            ["alice", "ivan", "eve"][i % 3],
            ["case.submit", "case.approve", "case.search"][i % 3],
            subjects={"case": f"C-{i}"},
            details={"i": i},
            clock=clock,
            checkpoint_every=every,
        )
    conn.execute("COMMIT")
    pinned = audit.terminal_public_key(conn).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return conn, pinned


def drop_triggers(conn: sqlite3.Connection) -> None:
    for name in TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")


def restore_triggers(conn: sqlite3.Connection) -> None:
    for sql in TRIGGERS.values():
        conn.execute(sql)


# The attacker's tools


Tamper = Callable[[sqlite3.Connection], None]


def sql(*statements: str) -> Tamper:
    def run(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return run


def rehash(conn: sqlite3.Connection, first: int, last: int, relink: bool) -> None:
    """Recompute stored hashes of events first..last (and, with relink, each prev_hash) as a forger would."""
    for seq in range(first, last + 1):
        row = conn.execute(f"SELECT {COLUMNS} FROM audit_events WHERE seq = ?", (seq,)).fetchone()
        _, at, actor, action, subjects, details, prev_hash, _ = row
        if relink:
            before = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (seq - 1,)).fetchone()
            prev_hash = before[0] if before else GENESIS_HASH
        digest = event_hash(seq, at, actor, action, subjects, details, prev_hash)
        conn.execute("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev_hash, digest, seq))


def renumber(order: list[int]) -> Tamper:
    """Rewrite the table with the events in ``order``, numbered 1, 2, 3... (contents and hashes kept)."""

    def run(conn: sqlite3.Connection) -> None:
        rows = {r[0]: r for r in conn.execute(f"SELECT {COLUMNS} FROM audit_events")}
        conn.execute("DELETE FROM audit_events")
        for position, seq in enumerate(order, start=1):
            conn.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (position, *rows[seq][1:]))

    return run


def swap(a: int, b: int) -> Tamper:
    return sql(
        f"UPDATE audit_events SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_events SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_events SET seq = {b} WHERE seq = -1",
    )


def edit_and_rehash_one(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 15")
    rehash(conn, 15, 15, relink=False)


def rewrite_tail(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE audit_events SET details = '{\"i\":0}' WHERE seq = 15")
    rehash(conn, 15, EVENTS, relink=True)


def rewrite_genesis(conn: sqlite3.Connection) -> None:
    conn.execute(f"UPDATE audit_events SET prev_hash = '{'1' * 64}' WHERE seq = 1")
    rehash(conn, 1, 1, relink=False)


def truncate_and_forge_a_new_tail(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_events WHERE seq > 25")
    prev = conn.execute("SELECT hash FROM audit_events WHERE seq = 25").fetchone()[0]
    for seq in range(26, 35):
        fields = (seq, f"2025-03-01T10:00:{seq:02d}.000000Z", "mallory", "case.search", "{}", "{}", prev)
        prev = event_hash(*fields)
        conn.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*fields, prev))


def resign_with_own_key(conn: sqlite3.Connection) -> None:
    """Replace the terminal key in the database and re-sign every checkpoint with it."""
    forged = Ed25519PrivateKey.generate()
    raw_public = forged.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = audit.key_id_of(forged.public_key())
    conn.execute(
        "UPDATE audit_terminal_key SET key_id = ?, public_key = ?, private_key = ?",
        (key_id, raw_public, forged.private_bytes_raw()),
    )
    for cp in audit.checkpoints(conn):
        statement = checkpoint_statement(cp.number, cp.seq, cp.event_hash, cp.at, key_id, cp.prev_digest)
        conn.execute(
            "UPDATE audit_checkpoints SET key_id = ?, signature = ? WHERE number = ?",
            (key_id, forged.sign(statement), cp.number),
        )


def move_checkpoint(conn: sqlite3.Connection) -> None:
    target = conn.execute("SELECT hash FROM audit_events WHERE seq = 15").fetchone()[0]
    conn.execute("UPDATE audit_checkpoints SET seq = 15, event_hash = ? WHERE number = 2", (target,))


def differs(seq: int, number: int) -> str:
    return f"seq {seq}: differs from signed checkpoint {number} (the log up to seq {seq} was rewritten)"


def truncated(number: int, seq: int, end: int) -> str:
    return f"log truncated: checkpoint {number} covers seq {seq} but the log ends at seq {end}"


def forged(number: int, seq: int) -> str:
    return (
        f"checkpoint {number} (seq {seq}): signature does not verify with the terminal's public key (forged checkpoint)"
    )


# name, tampering, drop and restore the triggers around it, expected problems (in order; a trailing '…' means a prefix)
ATTACKS: list[tuple[str, Tamper, bool, list[str]]] = [
    (
        "edit an event's actor",
        sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"),
        True,
        ["seq 7: hash mismatch (event edited)"],
    ),
    (
        "edit an event's details",
        sql("UPDATE audit_events SET details = '{\"i\":999}' WHERE seq = 12"),
        True,
        ["seq 12: hash mismatch (event edited)"],
    ),
    (
        "edit the time of an unsigned event",
        sql("UPDATE audit_events SET at = '2024-01-01T00:00:00.000000Z' WHERE seq = 33"),
        True,
        ["seq 33: hash mismatch (event edited)"],
    ),
    (
        "edit a stored hash",
        sql(f"UPDATE audit_events SET hash = '{'a' * 64}' WHERE seq = 18"),
        True,
        ["seq 18: hash mismatch (event edited)"],
    ),
    (
        "edit the hash of a checkpointed event",
        sql(f"UPDATE audit_events SET hash = '{'a' * 64}' WHERE seq = 20"),
        True,
        ["seq 20: hash mismatch (event edited)", differs(20, 2)],
    ),
    (
        "edit a run of events",
        sql("UPDATE audit_events SET action = 'case.close' WHERE seq BETWEEN 4 AND 6"),
        True,
        ["seq 4 to seq 6: hash mismatch (events edited)"],
    ),
    (
        "edit one event and re-hash it",
        edit_and_rehash_one,
        True,
        ["seq 16: chain broken: it does not follow seq 15 (one of them was rewritten and re-hashed)"],
    ),
    ("rewrite the log from seq 15 and re-hash the rest", rewrite_tail, True, [differs(20, 2), differs(30, 3)]),
    (
        "rewrite the first event's link to genesis",
        rewrite_genesis,
        True,
        [
            "seq 1: chain broken: it does not start from the genesis hash (log rewritten)",
            "seq 2: chain broken: it does not follow seq 1 (one of them was rewritten and re-hashed)",
        ],
    ),
    (
        "delete an event",
        sql("DELETE FROM audit_events WHERE seq = 9"),
        True,
        ["events deleted: seq 9 missing (gap between seq 8 and seq 10)"],
    ),
    (
        "delete a run of events",
        sql("DELETE FROM audit_events WHERE seq BETWEEN 3 AND 5"),
        True,
        ["events deleted: seq 3 to seq 5 missing (gap between seq 2 and seq 6)"],
    ),
    (
        "delete the first event",
        sql("DELETE FROM audit_events WHERE seq = 1"),
        True,
        ["events deleted: seq 1 missing (the log starts at seq 2)"],
    ),
    (
        "delete a checkpointed event",
        sql("DELETE FROM audit_events WHERE seq = 20"),
        True,
        [
            "events deleted: seq 20 missing (gap between seq 19 and seq 21)",
            "checkpoint 2 covers seq 20, which is missing (events deleted)",
        ],
    ),
    (
        "swap two neighbours",
        swap(5, 6),
        True,
        ["seq 5: holds event 6 (events reordered)", "seq 6: holds event 5 (events reordered)"],
    ),
    (
        "swap two distant events",
        swap(3, 27),
        True,
        ["seq 3: holds event 27 (events reordered)", "seq 27: holds event 3 (events reordered)"],
    ),
    (
        "move an event to the end and renumber",
        renumber([1, 2, *range(4, EVENTS + 1), 3]),
        True,
        [
            "seq 3 to seq 33: hold events 4 to 34 (events reordered or renumbered)",
            "seq 34: holds event 3 (events reordered)",
            differs(10, 1),
            differs(20, 2),
            differs(30, 3),
        ],
    ),
    (
        "delete an event and renumber the rest",
        renumber([*range(1, 9), *range(10, EVENTS + 1)]),
        True,
        [
            "seq 9 to seq 33: hold events 10 to 34 (events reordered or renumbered)",
            differs(10, 1),
            differs(20, 2),
            differs(30, 3),
        ],
    ),
    (
        "insert a copy of an event",
        sql(f"INSERT INTO audit_events SELECT 35, {COLUMNS.split(', ', 1)[1]} FROM audit_events WHERE seq = 4"),
        True,
        ["seq 35: a copy of seq 4 (events inserted)"],
    ),
    (
        "insert an event before the first",
        sql(f"INSERT INTO audit_events SELECT 0, {COLUMNS.split(', ', 1)[1]} FROM audit_events WHERE seq = 1"),
        True,
        ["seq 0: not a valid sequence number (event inserted)", "seq 0: a copy of seq 1 (events inserted)"],
    ),
    (
        "truncate after the last checkpoint",
        sql("DELETE FROM audit_events WHERE seq > 25"),
        True,
        [truncated(3, 30, 25)],
    ),
    (
        "truncate the whole log",
        sql("DELETE FROM audit_events"),
        True,
        [truncated(1, 10, 0), truncated(2, 20, 0), truncated(3, 30, 0)],
    ),
    ("truncate and forge a new tail", truncate_and_forge_a_new_tail, True, [differs(30, 3)]),
    (
        "forge a checkpoint signature",
        sql("UPDATE audit_checkpoints SET signature = randomblob(64) WHERE number = 2"),
        True,
        [forged(2, 20)],
    ),
    ("move a checkpoint to an earlier event", move_checkpoint, True, [forged(2, 15)]),
    (
        "replace the terminal key and re-sign every checkpoint",
        resign_with_own_key,
        True,
        ["the workspace's terminal key (…", forged(1, 10), forged(2, 20), forged(3, 30)],
    ),
    (
        "delete a checkpoint",
        sql("DELETE FROM audit_checkpoints WHERE number = 2"),
        True,
        ["checkpoints deleted: checkpoint 2 missing"],
    ),
    (
        "drop the update trigger and edit",
        sql("DROP TRIGGER audit_events_no_update", "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"),
        False,
        [
            "append-only protection removed: trigger audit_events_no_update is missing",
            "seq 7: hash mismatch (event edited)",
        ],
    ),
    (
        "replace a trigger with one that does nothing",
        sql(
            "DROP TRIGGER audit_events_no_delete",
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT 1; END",
        ),
        False,
        ["append-only protection altered: trigger audit_events_no_delete is not the one installed"],
    ),
    (
        "add a trigger of one's own",
        sql("CREATE TRIGGER sneaky AFTER INSERT ON audit_events BEGIN SELECT 1; END"),
        True,
        ["unexpected trigger sneaky on the audit tables"],
    ),
    (
        "drop the log table",
        sql("DROP TABLE audit_events"),
        False,
        ["audit table audit_events is missing (dropped)"],
    ),
]


def attack(conn: sqlite3.Connection, tamper: Tamper, restore: bool) -> None:
    """Tamper; with ``restore``, around it drop every trigger and put them back (otherwise the tamper handles them)."""
    if restore:
        drop_triggers(conn)
    tamper(conn)
    if restore:
        restore_triggers(conn)


def test_the_untouched_log_verifies() -> None:
    conn, pinned = build()
    result = audit.verify(conn, pinned)
    assert (result.ok, result.events, result.problems, result.checkpoints, result.signed_through) == (
        True,
        EVENTS,
        [],
        3,
        30,
    )


@pytest.mark.parametrize(("tamper", "restore", "expected"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_each_attack_is_named(tamper: Tamper, restore: bool, expected: list[str]) -> None:
    conn, pinned = build()
    attack(conn, tamper, restore)
    result = audit.verify(conn, pinned)
    assert not result.ok
    assert len(result.problems) == len(expected), result.problems
    for problem, wanted in zip(result.problems, expected, strict=True):
        if wanted.endswith("…"):
            assert problem.startswith(wanted[:-1]), result.problems
        else:
            assert problem == wanted, result.problems


def test_the_triggers_stop_the_application_but_verify_does_not_rely_on_them() -> None:
    conn, pinned = build()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_events WHERE seq > 25")
    assert audit.verify(conn, pinned).ok


def test_known_limit_unsigned_tail() -> None:
    """Events after the last checkpoint are protected by the chain only: cutting them off is not detectable here.

    This is why checkpoints are frequent and audit bundles leave the terminal; the result says how far the
    signatures reach, so an auditor knows which events are covered.
    """
    conn, pinned = build()
    attack(conn, sql("DELETE FROM audit_events WHERE seq > 30"), restore=True)
    result = audit.verify(conn, pinned)
    assert result.ok and result.events == 30 and result.signed_through == 30


# Property: any single-row tamper is detected and located


SPAN = re.compile(r"(?:seq|events?) (-?\d+)(?: to (?:seq )?(-?\d+))?")


def located(problems: list[str]) -> set[int]:
    """Every sequence number the problems point at (single numbers and 'N to M' spans)."""
    found: set[int] = set()
    for problem in problems:
        for first, last in SPAN.findall(problem):
            found.update(range(int(first), int(last or first) + 1))
    return found


EVENT_COLUMNS = ["seq", "at", "actor", "action", "subjects", "details", "prev_hash", "hash"]
CHECKPOINT_COLUMNS = ["number", "seq", "event_hash", "at", "key_id", "prev_digest", "signature"]


@settings(max_examples=150, deadline=None)
@given(
    events=st.integers(2, 30),
    every=st.sampled_from([1, 4, 10, 50]),
    kind=st.sampled_from(["edit", "delete", "swap", "checkpoint"]),
    data=st.data(),
)
def test_any_single_row_tamper_is_detected(events: int, every: int, kind: str, data: st.DataObject) -> None:
    conn, pinned = build(events, every)
    if kind == "checkpoint" or data.draw(st.booleans(), label="checkpoint on demand"):
        audit.checkpoint(conn)
    signed_through = audit.verify(conn, pinned).signed_through
    seq = data.draw(st.integers(1, events), label="seq")
    drop_triggers(conn)
    if kind == "edit":
        column = data.draw(st.sampled_from(EVENT_COLUMNS), label="column")
        old = conn.execute(f"SELECT {column} FROM audit_events WHERE seq = ?", (seq,)).fetchone()[0]
        if column == "seq":
            new: object = data.draw(st.sampled_from([events + 7, -3, 0]), label="new seq")
        else:
            new = data.draw(
                st.one_of(st.text(max_size=70), st.integers(-(2**63), 2**63 - 1), st.binary(max_size=64)).filter(
                    lambda v: v != old
                ),
                label="new value",
            )
        conn.execute(f"UPDATE audit_events SET {column} = ? WHERE seq = ?", (new, seq))
        named = {seq}
    elif kind == "delete":
        if seq == events and seq > signed_through:
            seq -= 1  # cutting off the unsigned tail is the documented limit
        conn.execute("DELETE FROM audit_events WHERE seq = ?", (seq,))
        named = {seq}
    elif kind == "swap":
        other = data.draw(st.integers(1, events).filter(lambda s: s != seq), label="other")
        swap(seq, other)(conn)
        named = {seq, other}
    else:
        count = len(audit.checkpoints(conn))
        number = data.draw(st.integers(1, count), label="checkpoint")
        column = data.draw(st.sampled_from(CHECKPOINT_COLUMNS), label="checkpoint column")
        old = conn.execute(f"SELECT {column} FROM audit_checkpoints WHERE number = ?", (number,)).fetchone()[0]
        new = data.draw(
            st.one_of(st.integers(-5, 100), st.text(max_size=70), st.binary(min_size=64, max_size=64)).filter(
                lambda v: v != old
            ),
            label="new value",
        )
        try:
            conn.execute(f"UPDATE audit_checkpoints SET {column} = ? WHERE number = ?", (new, number))
        except sqlite3.IntegrityError:
            reject()  # two checkpoints cannot share a number
        named = set()
    restore_triggers(conn)
    result = audit.verify(conn, pinned)
    assert not result.ok
    if kind == "checkpoint":
        assert any("checkpoint" in p for p in result.problems), result.problems
    else:
        assert named <= located(result.problems), result.problems
