"""Tampering with the audit log directly in the database: verify names each attack and where it happened.

Attack cases are a table (python-tuf style): a name, the tampering done with plain SQL by an
insider who holds the workspace key (so can read and write every table) but not the terminal's
audit signing key file, and the exact problems ``verify`` must report. Each is checked twice:
against the public key the auditor recorded at installation, and against that key together
with the head (seq, hash) the auditor recorded at their last verification (``expect``).

The attacker drops the append-only triggers first and, unless the case is about the triggers,
puts them back afterwards to cover their tracks, so the expected problems are exactly those the
tampering itself leaves. Cases marked ``triggers=False`` need no trigger dropped at all.

``LIMITS`` are the documented limit: a log cut back to one of its own earlier signed heads, or
rebuilt or rolled back by someone who ALSO holds the terminal's audit signing key file, is a
genuine-looking log; only a head recorded outside the terminal (``expect``) shows it.

``BEHIND_THE_TERMINAL`` checks that the terminal, writing its next event (a sign-in) after such
tampering, does not sign over it: it records what it found first, which ``verify`` reports.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from engine import audit, schema
from engine.audit import AuditSigningKey, event_hash
from engine.audit.checkpoints import checkpoint, checkpoint_statement, register_key
from engine.audit.store import ALL_TRIGGERS, GENESIS_HASH
from engine.errors import AuditError
from engine.security.keys import WorkspaceKey
from engine.workspace import Workspace
from tests.terminals import new_workspace

# The seq at which each of the terminal's transactions ended, so where it signed a head:
# head 1 covers the workspace.create event, head 6 the last event.
HEADS = (1, 30, 60, 90, 120, 131)
EVENTS = HEADS[-1]
COLUMNS = "seq, at, actor, action, subjects, details, prev_hash, hash"
ATTACKER = AuditSigningKey.generate()  # the attacker's own Ed25519 key


class TickingClock:
    """One second later on every call."""

    def __init__(self, start: datetime = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Log:
    """A terminal's audit log and what the auditor holds outside it."""

    conn: sqlite3.Connection
    key: AuditSigningKey  # the terminal's signing key file
    pinned: bytes  # the public key the auditor recorded at installation
    recorded: tuple[int, str] = (0, "")  # the head the auditor recorded at their last verification
    clock: TickingClock = field(default_factory=TickingClock)
    first_key: AuditSigningKey | None = None  # before a rotation: the key the log started with

    def names(self) -> dict[str, str]:
        """What expected problems may name: key fingerprints and the recorded hash (first 16 digits)."""
        first = self.first_key or self.key
        return {
            "terminal": first.key_id[:16],
            "new": self.key.key_id[:16],
            "attacker": ATTACKER.key_id[:16],
            "recorded": self.recorded[1][:16],
        }

    def transaction(self, count: int, actor: str = "alice") -> None:
        """``count`` events written and signed by the terminal, as a workspace transaction does."""
        since = int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0])
        self.conn.execute("BEGIN IMMEDIATE")
        for _ in range(count):
            audit.append(self.conn, actor, "case.search", subjects={"case": "C-X"}, clock=self.clock)
        audit.seal(self.conn, self.key, self.clock, since=since)
        self.conn.execute("COMMIT")


def bare_log() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.apply_all(conn, audit.MIGRATIONS)
    return conn


def build(heads: tuple[int, ...] = HEADS, *, rotated: bool = False) -> Log:
    """A log written by the terminal in transactions ending at ``heads``; with ``rotated``, then a key rotation.

    The rotated log goes on: seq 132 is the rotation (signed by the old key), 133-135 are signed by the new one.
    """
    conn = bare_log()
    key = AuditSigningKey.generate()
    clock = TickingClock()
    conn.execute("BEGIN IMMEDIATE")
    audit.start_log(conn, key, "ws-1", clock)
    conn.execute("COMMIT")
    seq = 1
    for end in heads[1:]:
        since = seq
        conn.execute("BEGIN IMMEDIATE")
        while seq < end:
            seq += 1
            audit.append(
                conn,
                ["alice", "ivan", "eve"][seq % 3],
                ["case.submit", "case.approve", "case.search"][seq % 3],
                subjects={"case": f"C-{seq}"},
                details={"i": seq},
                clock=clock,
            )
        audit.seal(conn, key, clock, since=since)
        conn.execute("COMMIT")
    log = Log(conn, key, key.public_bytes, clock=clock)
    if rotated:
        new = AuditSigningKey.generate()
        conn.execute("BEGIN IMMEDIATE")
        audit.rotate_key(conn, "eng1", key, new, "yearly rotation", clock)
        conn.execute("COMMIT")
        log.key, log.first_key = new, key
        log.transaction(3)
    result = audit.verify(conn, log.pinned)
    assert result.ok and result.head is not None, result.problems
    log.recorded = result.head
    return log


def drop_triggers(conn: sqlite3.Connection) -> None:
    for name in ALL_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")


def restore_triggers(conn: sqlite3.Connection) -> None:
    for statement in ALL_TRIGGERS.values():
        conn.execute(statement)


# The attacker's tools


Tamper = Callable[[Log], None]


def sql(*statements: str) -> Tamper:
    def run(log: Log) -> None:
        for statement in statements:
            log.conn.execute(statement)

    return run


def both(*tampers: Tamper) -> Tamper:
    def run(log: Log) -> None:
        for tamper in tampers:
            tamper(log)

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


def forge_events(conn: sqlite3.Connection, first: int, count: int) -> None:
    """Append ``count`` invented events from ``first`` on, chained to what is there (or to genesis)."""
    before = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (first - 1,)).fetchone()
    prev = before[0] if before else GENESIS_HASH
    for seq in range(first, first + count):
        fields = (seq, f"2025-03-02T10:00:{seq % 60:02d}.000000Z", "mallory", "case.search", "{}", "{}", prev)
        prev = event_hash(*fields)
        conn.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*fields, prev))


def renumber(order: list[int]) -> Tamper:
    """Rewrite the table with the events in ``order``, numbered 1, 2, 3... (contents and hashes kept)."""

    def run(log: Log) -> None:
        rows = {r[0]: r for r in log.conn.execute(f"SELECT {COLUMNS} FROM audit_events")}
        log.conn.execute("DELETE FROM audit_events")
        for position, seq in enumerate(order, start=1):
            log.conn.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (position, *rows[seq][1:]))

    return run


def swap(a: int, b: int) -> Tamper:
    return sql(
        f"UPDATE audit_events SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_events SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_events SET seq = {b} WHERE seq = -1",
    )


def edit_and_rehash_one(log: Log) -> None:
    log.conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 15")
    rehash(log.conn, 15, 15, relink=False)


def rewrite_from_15(log: Log) -> None:
    log.conn.execute("UPDATE audit_events SET details = '{\"i\":0}' WHERE seq = 15")
    rehash(log.conn, 15, EVENTS, relink=True)


def rewrite_genesis(log: Log) -> None:
    log.conn.execute(f"UPDATE audit_events SET prev_hash = '{'1' * 64}' WHERE seq = 1")
    rehash(log.conn, 1, 1, relink=False)


def forge_tail(log: Log) -> None:
    """Cut the last 6 events and write 6 invented ones in their place, properly chained and hashed."""
    log.conn.execute("DELETE FROM audit_events WHERE seq > 125")
    forge_events(log.conn, 126, 6)


def move_head(log: Log) -> None:
    target = log.conn.execute("SELECT hash FROM audit_events WHERE seq = 15").fetchone()[0]
    log.conn.execute("UPDATE audit_checkpoints SET seq = 15, event_hash = ? WHERE number = 2", (target,))


def replace_keys(log: Log) -> None:
    """Write the attacker's public key in place of the log's first key."""
    log.conn.execute("DELETE FROM audit_keys")
    register_key(log.conn, ATTACKER, 0)


def resign_heads(log: Log) -> None:
    """Re-sign every stored head with the attacker's key, chained as the terminal would."""
    heads = audit.checkpoints(log.conn)
    log.conn.execute("DELETE FROM audit_checkpoints")
    prev = GENESIS_HASH
    for cp in heads:
        statement = checkpoint_statement(cp.number, cp.seq, cp.event_hash, cp.at, ATTACKER.key_id, prev)
        forged = audit.Checkpoint(
            cp.number, cp.seq, cp.event_hash, cp.at, ATTACKER.key_id, prev, ATTACKER.sign(statement)
        )
        log.conn.execute(
            "INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
            (forged.number, forged.seq, forged.event_hash, forged.at, forged.key_id, prev, forged.signature),
        )
        prev = forged.digest


def add_attacker_key_at(seq: int) -> Tamper:
    def run(log: Log) -> None:
        register_key(log.conn, ATTACKER, seq)

    return run


def invent_log(log: Log) -> None:
    """Replace the whole log with 3 invented events chained from zero."""
    log.conn.execute("DELETE FROM audit_events")
    clock = TickingClock()
    audit.append(log.conn, "system", "workspace.create", subjects={"workspace": "ws-1"}, clock=clock)
    audit.append(log.conn, "alice", "case.submit", subjects={"case": "C-1"}, clock=clock)
    audit.append(log.conn, "ivan", "case.approve", subjects={"case": "C-1"}, clock=clock)


def sign_with_attacker_key(log: Log) -> None:
    checkpoint(log.conn, ATTACKER, TickingClock())


def fake_rotation(log: Log, *, sign_rotation: bool = False) -> None:
    """Append an audit.key_rotated event handing signing over to the attacker's key, then use that key.

    Appending an event, a key and a head in order is allowed by the triggers: no trigger is needed.
    """
    clock = TickingClock(datetime(2025, 3, 2, tzinfo=UTC))
    event = audit.append(
        log.conn,
        "mallory",
        "audit.key_rotated",
        details={"old_key_id": log.key.key_id, "new_key_id": ATTACKER.key_id, "reason": "routine"},
        clock=clock,
    )
    if sign_rotation:
        checkpoint(log.conn, ATTACKER, clock)
    register_key(log.conn, ATTACKER, event.seq, clock)
    audit.append(log.conn, "mallory", "case.search", subjects={"case": "C-9"}, clock=clock)
    checkpoint(log.conn, ATTACKER, clock)


def fake_rotation_mid_log(log: Log) -> None:
    """Rewrite event 61 into a hand-over to the attacker's key, re-hash the rest, re-sign heads 4-6 with it."""
    details = json.dumps({"new_key_id": ATTACKER.key_id, "old_key_id": log.key.key_id, "reason": "x"})
    log.conn.execute("UPDATE audit_events SET action = 'audit.key_rotated', details = ? WHERE seq = 61", (details,))
    rehash(log.conn, 61, EVENTS, relink=True)
    register_key(log.conn, ATTACKER, 61)
    heads = audit.checkpoints(log.conn)
    log.conn.execute("DELETE FROM audit_checkpoints WHERE number > 3")
    prev = heads[2].digest
    for cp in heads[3:]:
        digest = log.conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (cp.seq,)).fetchone()[0]
        statement = checkpoint_statement(cp.number, cp.seq, digest, cp.at, ATTACKER.key_id, prev)
        signature = ATTACKER.sign(statement)
        log.conn.execute(
            "INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cp.number, cp.seq, digest, cp.at, ATTACKER.key_id, prev, signature),
        )
        prev = audit.Checkpoint(cp.number, cp.seq, digest, cp.at, ATTACKER.key_id, prev, signature).digest


def invent_log_with_fake_rotation(log: Log) -> None:
    """3 invented events from zero: the second hands signing over to the attacker's key, which signs the head."""
    log.conn.execute("DELETE FROM audit_events")
    log.conn.execute("DELETE FROM audit_checkpoints")
    clock = TickingClock()
    audit.append(log.conn, "system", "workspace.create", details={"audit_key_id": log.key.key_id}, clock=clock)
    audit.append(
        log.conn,
        "eng1",
        "audit.key_rotated",
        details={"old_key_id": log.key.key_id, "new_key_id": ATTACKER.key_id, "reason": "routine"},
        clock=clock,
    )
    register_key(log.conn, ATTACKER, 2, clock)
    audit.append(log.conn, "ivan", "case.approve", clock=clock)
    checkpoint(log.conn, ATTACKER, clock)


def leaked_retired_key(log: Log) -> None:
    """After a rotation, the retired key file (leaked) signs two new events."""
    assert log.first_key is not None
    clock = TickingClock(datetime(2025, 3, 3, tzinfo=UTC))
    audit.append(log.conn, "mallory", "case.search", clock=clock)
    audit.append(log.conn, "mallory", "case.search", clock=clock)
    checkpoint(log.conn, log.first_key, clock)


def differs(seq: int) -> str:
    number = HEADS.index(seq) + 1
    return f"seq {seq}: differs from signed checkpoint {number} (the log up to seq {seq} was rewritten)"


def truncated(seq: int, end: int) -> str:
    return f"log truncated: checkpoint {HEADS.index(seq) + 1} covers seq {seq} but the log ends at seq {end}"


def forged(number: int, seq: int) -> str:
    return f"checkpoint {number} (seq {seq}): signature does not verify with the log's audit keys (forged signed head)"


def following(first: int, last: int, head: int) -> str:
    span = f"seq {first}" if first == last else f"seq {first} to seq {last}"
    verb = "follows" if first == last else "follow"
    return (
        f"{span} {verb} the last signed head (seq {head}): "
        "events written behind the terminal's back, or signed heads deleted"
    )


def unsigned(first: int, last: int) -> str:
    return (
        f"no signed head covers the log: seq {first} to seq {last} are unsigned "
        "(signed heads deleted, or events written behind the terminal's back)"
    )


NOT_THE_AUDITORS_KEY = (
    "the log is not signed with the public key given ({terminal}); its keys are {attacker}: "
    "the log was rebuilt, or the key is another terminal's"
)
FAKE_ROTATION = "audit key {attacker}: the rotation at seq %d is not signed by the key it replaces (%s) (key inserted)"
EMPTIED = "the log has no events, yet it was started with audit key {terminal}: every event was deleted"
# What ``expect`` adds: the recorded head is gone (rolled back, rebuilt), or still there but no longer vouched for.
LOST = (
    "the log does not hold the head recorded outside the terminal (seq {seq}, hash {recorded}): "
    "it was rolled back or rebuilt"
)
UNCOVERED = "the recorded head seq {seq} is not covered by a valid signed head"


@dataclass(frozen=True)
class Attack:
    tamper: Tamper
    problems: tuple[str, ...]  # reported against the auditor's recorded public key
    with_expect: tuple[str, ...] = ()  # added when the auditor also gives the head they recorded
    triggers: bool = True  # drop the triggers before and restore them after (cover one's tracks)
    rotated: bool = False  # on a log whose key was rotated (at seq 132; the auditor holds the first key)


ATTACKS: dict[str, Attack] = {
    # Events edited
    "edit an event's actor": Attack(
        sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"),
        ("seq 7: hash mismatch (event edited)",),
        (UNCOVERED,),
    ),
    "edit an event's details": Attack(
        sql("UPDATE audit_events SET details = '{\"i\":999}' WHERE seq = 12"),
        ("seq 12: hash mismatch (event edited)",),
        (UNCOVERED,),
    ),
    "edit the time of the last event": Attack(
        sql("UPDATE audit_events SET at = '2024-01-01T00:00:00.000000Z' WHERE seq = 131"),
        ("seq 131: hash mismatch (event edited)",),
        (UNCOVERED,),
    ),
    "edit a stored hash": Attack(
        sql(f"UPDATE audit_events SET hash = '{'a' * 64}' WHERE seq = 18"),
        ("seq 18: hash mismatch (event edited)",),
        (UNCOVERED,),
    ),
    "edit the hash of an event a signed head covers": Attack(
        sql(f"UPDATE audit_events SET hash = '{'a' * 64}' WHERE seq = 30"),
        ("seq 30: hash mismatch (event edited)", differs(30)),
        (UNCOVERED,),
    ),
    "edit a run of events": Attack(
        sql("UPDATE audit_events SET action = 'case.close' WHERE seq BETWEEN 4 AND 6"),
        ("seq 4 to seq 6: hash mismatch (events edited)",),
        (UNCOVERED,),
    ),
    "edit one event and re-hash it": Attack(
        edit_and_rehash_one,
        ("seq 16: chain broken: it does not follow seq 15 (one of them was rewritten and re-hashed)",),
        (UNCOVERED,),
    ),
    "rewrite the log from seq 15 and re-hash the rest": Attack(
        rewrite_from_15, (*(differs(seq) for seq in HEADS[1:]), following(2, EVENTS, 1)), (LOST,)
    ),
    "rewrite the first event's link to genesis": Attack(
        rewrite_genesis,
        (
            "seq 1: chain broken: it does not start from the genesis hash (log rewritten)",
            "seq 2: chain broken: it does not follow seq 1 (one of them was rewritten and re-hashed)",
            "seq 1: differs from signed checkpoint 1 (the log up to seq 1 was rewritten)",
        ),
        (UNCOVERED,),
    ),
    # Events deleted, moved, inserted
    "delete an event": Attack(
        sql("DELETE FROM audit_events WHERE seq = 9"),
        ("events deleted: seq 9 missing (gap between seq 8 and seq 10)",),
        (UNCOVERED,),
    ),
    "delete a run of events": Attack(
        sql("DELETE FROM audit_events WHERE seq BETWEEN 3 AND 5"),
        ("events deleted: seq 3 to seq 5 missing (gap between seq 2 and seq 6)",),
        (UNCOVERED,),
    ),
    "delete the first event": Attack(
        sql("DELETE FROM audit_events WHERE seq = 1"),
        (
            "events deleted: seq 1 missing (the log starts at seq 2)",
            "checkpoint 1 covers seq 1, which is missing (events deleted)",
        ),
        (UNCOVERED,),
    ),
    "delete an event a signed head covers": Attack(
        sql("DELETE FROM audit_events WHERE seq = 30"),
        (
            "events deleted: seq 30 missing (gap between seq 29 and seq 31)",
            "checkpoint 2 covers seq 30, which is missing (events deleted)",
        ),
        (UNCOVERED,),
    ),
    "swap two neighbours": Attack(
        swap(5, 6),
        ("seq 5: holds event 6 (events reordered)", "seq 6: holds event 5 (events reordered)"),
        (UNCOVERED,),
    ),
    "swap two distant events": Attack(
        swap(3, 27),
        ("seq 3: holds event 27 (events reordered)", "seq 27: holds event 3 (events reordered)"),
        (UNCOVERED,),
    ),
    "move an event to the end and renumber": Attack(
        renumber([1, 2, *range(4, EVENTS + 1), 3]),
        (
            f"seq 3 to seq {EVENTS - 1}: hold events 4 to {EVENTS} (events reordered or renumbered)",
            f"seq {EVENTS}: holds event 3 (events reordered)",
            *(differs(seq) for seq in HEADS[1:]),
        ),
        (LOST,),
    ),
    "delete an event and renumber the rest": Attack(
        renumber([*range(1, 9), *range(10, EVENTS + 1)]),
        (
            f"seq 9 to seq {EVENTS - 1}: hold events 10 to {EVENTS} (events reordered or renumbered)",
            *(differs(seq) for seq in HEADS[1:-1]),
            truncated(EVENTS, EVENTS - 1),
        ),
        (LOST,),
    ),
    "insert a copy of an event after the last": Attack(
        sql(f"INSERT INTO audit_events SELECT 132, {COLUMNS.split(', ', 1)[1]} FROM audit_events WHERE seq = 4"),
        ("seq 132: a copy of seq 4 (events inserted)",),
    ),
    "insert an event before the first": Attack(
        sql(f"INSERT INTO audit_events SELECT 0, {COLUMNS.split(', ', 1)[1]} FROM audit_events WHERE seq = 1"),
        ("seq 0: not a valid sequence number (event inserted)", "seq 0: a copy of seq 1 (events inserted)"),
        (UNCOVERED,),
    ),
    # The end of the log, and the signed heads (issue 14)
    "delete the last events (a signed head covers them)": Attack(
        sql("DELETE FROM audit_events WHERE seq > 125"),
        (truncated(131, 125), following(121, 125, 120)),
        (LOST,),
    ),
    "delete the whole log": Attack(
        sql("DELETE FROM audit_events"),
        (*(truncated(seq, 0) for seq in HEADS), EMPTIED),
        (LOST,),
    ),
    "delete the whole log and every signed head": Attack(
        sql("DELETE FROM audit_events", "DELETE FROM audit_checkpoints"), (EMPTIED,), (LOST,)
    ),
    "delete every signed head": Attack(sql("DELETE FROM audit_checkpoints"), (unsigned(1, EVENTS),), (UNCOVERED,)),
    "delete every signed head and truncate the log from 131 to 39 events": Attack(
        sql("DELETE FROM audit_checkpoints", "DELETE FROM audit_events WHERE seq > 39"), (unsigned(1, 39),), (LOST,)
    ),
    "delete the last signed head": Attack(
        sql("DELETE FROM audit_checkpoints WHERE number = 6"), (following(121, EVENTS, 120),), (UNCOVERED,)
    ),
    "delete a signed head in the middle": Attack(
        sql("DELETE FROM audit_checkpoints WHERE number = 3"), ("signed heads deleted: checkpoint 3 missing",)
    ),
    "append events after the last signed head (an unsigned tail)": Attack(
        lambda log: forge_events(log.conn, EVENTS + 1, 3), (following(132, 134, EVENTS),), triggers=False
    ),
    "forge a re-hashed tail": Attack(forge_tail, (differs(131), following(121, 131, 120)), (LOST,)),
    "forge a re-hashed tail and delete its signed head": Attack(
        both(forge_tail, sql("DELETE FROM audit_checkpoints WHERE number = 6")), (following(121, 131, 120),), (LOST,)
    ),
    "replace the log with 3 invented events chained from zero": Attack(
        invent_log,
        (
            "seq 1: differs from signed checkpoint 1 (the log up to seq 1 was rewritten)",
            *(truncated(seq, 3) for seq in HEADS[1:]),
            unsigned(1, 3),
        ),
        (LOST,),
    ),
    "replace the log with 3 invented events and delete every signed head": Attack(
        both(invent_log, sql("DELETE FROM audit_checkpoints")), (unsigned(1, 3),), (LOST,)
    ),
    "replace the log with 3 invented events signed with the attacker's key in place of the first key": Attack(
        both(invent_log, sql("DELETE FROM audit_checkpoints"), replace_keys, sign_with_attacker_key),
        (NOT_THE_AUDITORS_KEY,),
        (LOST,),
    ),
    "replace the log with 3 invented events signed with the attacker's key brought in by a fake rotation": Attack(
        invent_log_with_fake_rotation, (FAKE_ROTATION % (2, "{terminal}"),), (LOST,)
    ),
    # Signed heads forged, keys inserted (issue 14)
    "forge a head's signature": Attack(
        sql("UPDATE audit_checkpoints SET signature = randomblob(64) WHERE number = 3"), (forged(3, 60),)
    ),
    "move a head to an earlier event": Attack(move_head, (forged(2, 15),)),
    "re-sign every head with the attacker's key written in place of the first key": Attack(
        both(replace_keys, resign_heads), (NOT_THE_AUDITORS_KEY,)
    ),
    "re-sign every head with the attacker's key added beside the first key": Attack(
        both(add_attacker_key_at(50), resign_heads),
        (
            "audit key {attacker} is not introduced by a key rotation at seq 50 (key inserted)",
            *(
                f"checkpoint {n} (seq {seq}): signed with key {{attacker}} outside the events it may sign "
                "(forged signed head)"
                for n, seq in enumerate(HEADS[:2], start=1)
            ),
        ),
    ),
    "bring in the attacker's key by a fake rotation and sign new events with it": Attack(
        fake_rotation, (FAKE_ROTATION % (132, "{terminal}"),), triggers=False
    ),
    "fake rotation whose own head the attacker's key signs": Attack(
        lambda log: fake_rotation(log, sign_rotation=True),
        (
            "checkpoint 7 (seq 132): signed with key {attacker} outside the events it may sign (forged signed head)",
            FAKE_ROTATION % (132, "{terminal}"),
        ),
        triggers=False,
    ),
    "rewrite an event into a fake rotation and re-sign the later heads with the attacker's key": Attack(
        fake_rotation_mid_log, (FAKE_ROTATION % (61, "{terminal}"),), (LOST,)
    ),
    "move the first key's introduction": Attack(
        sql("UPDATE audit_keys SET introduced_seq = 5"),
        (
            "audit key {terminal} is not introduced by a key rotation at seq 5 (key inserted)",
            "the log does not name exactly one first audit key (keys altered)",
            "checkpoint 1 (seq 1): signed with key {terminal} outside the events it may sign (forged signed head)",
        ),
    ),
    "alter the stored public key": Attack(
        sql("UPDATE audit_keys SET public_key = randomblob(32)"),
        (
            "audit key {terminal}: malformed record (key altered)",
            "the log does not name exactly one first audit key (keys altered)",
            "the log is not signed with the public key given ({terminal}); its keys are none: "
            "the log was rebuilt, or the key is another terminal's",
            *(
                f"checkpoint {n} (seq {seq}): signature does not verify with the log's audit keys (forged signed head)"
                for n, seq in enumerate(HEADS, start=1)
            ),
            unsigned(1, EVENTS),
        ),
        (UNCOVERED,),
    ),
    # After a key rotation (the auditor holds the first key)
    "a retired key, leaked after the rotation, signs new events": Attack(
        leaked_retired_key,
        (
            "checkpoint 9 (seq 137): signed with key {terminal} outside the events it may sign (forged signed head)",
            following(136, 137, 135),
        ),
        triggers=False,
        rotated=True,
    ),
    "delete the new key's record after a rotation": Attack(
        sql("DELETE FROM audit_keys WHERE introduced_seq > 0"),
        (
            "checkpoint 8 (seq 135): signature does not verify with the log's audit keys (forged signed head)",
            following(133, 135, 132),
        ),
        (UNCOVERED,),
        rotated=True,
    ),
    "delete the rotation event": Attack(
        sql("DELETE FROM audit_events WHERE seq = 132"),
        (
            "audit key {new} is not introduced by a key rotation at seq 132 (key inserted)",
            "events deleted: seq 132 missing (gap between seq 131 and seq 133)",
            "checkpoint 7 covers seq 132, which is missing (events deleted)",
        ),
        (UNCOVERED,),
        rotated=True,
    ),
    # The append-only triggers
    "drop the update trigger and edit": Attack(
        sql("DROP TRIGGER audit_events_no_update", "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"),
        (
            "append-only protection removed: trigger audit_events_no_update is missing",
            "seq 7: hash mismatch (event edited)",
        ),
        (UNCOVERED,),
        triggers=False,
    ),
    "replace a trigger with one that does nothing": Attack(
        sql(
            "DROP TRIGGER audit_events_no_delete",
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT 1; END",
        ),
        ("append-only protection altered: trigger audit_events_no_delete is not the one installed",),
        triggers=False,
    ),
    "drop the key table's delete trigger": Attack(
        sql("DROP TRIGGER audit_keys_no_delete"),
        ("append-only protection removed: trigger audit_keys_no_delete is missing",),
        triggers=False,
    ),
    "add a trigger of one's own": Attack(
        sql("CREATE TRIGGER sneaky AFTER INSERT ON audit_keys BEGIN SELECT 1; END"),
        ("unexpected trigger sneaky on the audit tables",),
    ),
    "drop the log table": Attack(
        sql("DROP TABLE audit_events"), ("audit table audit_events is missing (dropped)",), (), triggers=False
    ),
    "drop the key table": Attack(sql("DROP TABLE audit_keys"), ("audit table audit_keys is missing (dropped)",)),
}


def run_attack(log: Log, attack: Attack) -> None:
    if attack.triggers:
        drop_triggers(log.conn)
    attack.tamper(log)
    if attack.triggers and {"audit_events", "audit_checkpoints", "audit_keys"} <= tables(log.conn):
        restore_triggers(log.conn)


def tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def expected(log: Log, lines: tuple[str, ...]) -> list[str]:
    seq = log.recorded[0]
    return [line.replace("{seq}", str(seq)).format(**log.names()) for line in lines]


def test_the_untouched_log_verifies() -> None:
    log = build()
    result = audit.verify(log.conn, log.pinned, expect=log.recorded)
    assert (result.ok, result.events, result.problems, result.checkpoints, result.signed_through) == (
        True,
        EVENTS,
        [],
        len(HEADS),
        EVENTS,
    )
    assert (
        result.head
        == log.recorded
        == (EVENTS, log.conn.execute("SELECT hash FROM audit_events WHERE seq = 131").fetchone()[0])
    )
    assert result.keys == (log.key.key_id,)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_attack_is_named(name: str) -> None:
    attack = ATTACKS[name]
    log = build(rotated=attack.rotated)
    run_attack(log, attack)
    result = audit.verify(log.conn, log.pinned)
    assert not result.ok
    assert result.problems == expected(log, attack.problems)
    with_expect = audit.verify(log.conn, log.pinned, expect=log.recorded)
    assert not with_expect.ok
    assert with_expect.problems == expected(log, attack.problems + attack.with_expect)


# The documented limit: a genuine-looking log that only a head recorded outside the terminal exposes


def cut_back_to_head(log: Log) -> None:
    log.conn.execute("DELETE FROM audit_events WHERE seq > 90")
    log.conn.execute("DELETE FROM audit_checkpoints WHERE seq > 90")


def rebuild_with_stolen_key(log: Log) -> None:
    """Holding the terminal's signing key file too: 3 invented events, started and signed as the terminal would."""
    for table in ("audit_events", "audit_checkpoints", "audit_keys"):
        log.conn.execute(f"DELETE FROM {table}")
    clock = TickingClock()
    audit.start_log(log.conn, log.key, "ws-1", clock)
    audit.append(log.conn, "alice", "case.submit", clock=clock)
    audit.append(log.conn, "ivan", "case.approve", clock=clock)
    audit.seal(log.conn, log.key, clock)


def roll_back_with_stolen_key(log: Log) -> None:
    """Holding the terminal's signing key file too: cut back to seq 45 (between two heads) and go on, signed."""
    log.conn.execute("DELETE FROM audit_events WHERE seq > 45")
    log.conn.execute("DELETE FROM audit_checkpoints WHERE seq > 45")
    clock = TickingClock(datetime(2025, 3, 4, tzinfo=UTC))
    audit.append(log.conn, "alice", "case.submit", clock=clock)
    audit.seal(log.conn, log.key, clock)


def roll_back_past_rotation_with_retired_key(log: Log) -> None:
    """Holding the retired key file: cut back to before the rotation and go on signing with the retired key."""
    assert log.first_key is not None
    log.conn.execute("DELETE FROM audit_events WHERE seq > 131")
    log.conn.execute("DELETE FROM audit_checkpoints WHERE seq > 131")
    log.conn.execute("DELETE FROM audit_keys WHERE introduced_seq > 0")
    clock = TickingClock(datetime(2025, 3, 4, tzinfo=UTC))
    audit.append(log.conn, "mallory", "case.search", clock=clock)
    audit.seal(log.conn, log.first_key, clock)


# name: (tampering, on the rotated log)
LIMITS: dict[str, tuple[Tamper, bool]] = {
    "cut the log back to an earlier signed head (no key needed)": (cut_back_to_head, False),
    "rebuild the whole log from zero with the terminal's signing key": (rebuild_with_stolen_key, False),
    "roll back and go on, signed with the terminal's signing key": (roll_back_with_stolen_key, False),
    "roll back past a rotation and go on with the retired key": (roll_back_past_rotation_with_retired_key, True),
}


@pytest.mark.parametrize("name", list(LIMITS))
def test_documented_limit_only_a_recorded_head_exposes(name: str) -> None:
    """These logs verify against the auditor's public key ALONE: that is the documented limit.

    Cutting a log back to one of its own signed heads needs no key at all, and whoever also holds
    the terminal's audit signing key file can sign whatever they write. Only a head recorded
    outside the terminal (``--expect SEQ:HASH``, the auditor's note or the last exported bundle)
    shows the log was rolled back or rebuilt.
    """
    tamper, rotated = LIMITS[name]
    log = build(rotated=rotated)
    drop_triggers(log.conn)
    tamper(log)
    restore_triggers(log.conn)
    alone = audit.verify(log.conn, log.pinned)
    assert alone.ok, alone.problems  # the documented limit: nothing inside the terminal can show it
    with_expect = audit.verify(log.conn, log.pinned, expect=log.recorded)
    assert with_expect.problems == expected(log, (LOST,))


def test_an_auditor_holding_the_new_key_sees_a_roll_back_past_the_rotation() -> None:
    log = build(rotated=True)
    drop_triggers(log.conn)
    roll_back_past_rotation_with_retired_key(log)
    restore_triggers(log.conn)
    result = audit.verify(log.conn, log.key.public_bytes)
    assert result.problems == [
        f"the log is not signed with the public key given ({log.key.key_id[:16]}); its keys are "
        f"{log.first_key.key_id[:16] if log.first_key else ''}: the log was rebuilt, or the key is another terminal's"
    ]


def test_a_proper_rotation_verifies_with_the_old_key_and_the_new_one() -> None:
    log = build(rotated=True)
    assert log.first_key is not None
    for pinned in (log.first_key.public_bytes, log.key.public_bytes):
        result = audit.verify(log.conn, pinned, expect=log.recorded)
        assert (result.ok, result.events, result.checkpoints, result.signed_through) == (True, 135, 8, 135)
        assert result.keys == (log.first_key.key_id, log.key.key_id)
    rotation = next(audit.events(log.conn, 132, 132))
    assert (rotation.action, rotation.details["new_key_id"]) == ("audit.key_rotated", log.key.key_id)
    signers = {cp.seq: cp.key_id for cp in audit.checkpoints(log.conn)}
    assert signers[132] == log.first_key.key_id, "the hand-over is signed by the key being retired"
    assert signers[135] == log.key.key_id


def test_another_terminals_public_key_fails() -> None:
    log = build()
    other = AuditSigningKey.generate()
    for expect in (None, log.recorded):
        result = audit.verify(log.conn, other.public_bytes, expect=expect)
        assert result.problems == [
            f"the log is not signed with the public key given ({other.key_id[:16]}); its keys are "
            f"{log.key.key_id[:16]}: the log was rebuilt, or the key is another terminal's"
        ]


def test_the_triggers_stop_the_application_but_verify_does_not_rely_on_them() -> None:
    log = build()
    for statement in (
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7",
        "DELETE FROM audit_events WHERE seq > 25",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_keys SET introduced_seq = 3",
        "DELETE FROM audit_keys",
    ):
        with pytest.raises(sqlite3.IntegrityError, match=r"append-only|cannot be"):
            log.conn.execute(statement)
    assert audit.verify(log.conn, log.pinned, expect=log.recorded).ok


# The terminal never signs over what it did not write


FOUND = (
    "seq %d: the terminal found, when it next wrote, that %s (events written behind its back, or signed heads deleted)"
)

# name: (plain SQL behind the terminal's back on its 11-event log with heads at 1, 3, 5, 7, 9, 11; what verify
# reports once the terminal has written one more event)
BEHIND_THE_TERMINAL: dict[str, tuple[Tamper, list[str]]] = {
    "every signed head deleted and the log truncated": (
        sql("DELETE FROM audit_checkpoints", "DELETE FROM audit_events WHERE seq > 5"),
        [FOUND % (7, "no signed head covered seq 1 to seq 5")],
    ),
    "events appended after the last signed head": (
        lambda log: forge_events(log.conn, 12, 3),
        [FOUND % (16, "seq 12 to seq 14 followed the last signed head (checkpoint 6)")],
    ),
    "one event appended after the last signed head": (
        lambda log: forge_events(log.conn, 12, 1),
        [FOUND % (14, "seq 12 followed the last signed head (checkpoint 6)")],
    ),
    "the last signed head deleted": (
        sql("DELETE FROM audit_checkpoints WHERE number = 6"),
        [FOUND % (13, "seq 10 to seq 11 followed the last signed head (checkpoint 5)")],
    ),
    "the last events deleted": (
        sql("DELETE FROM audit_events WHERE seq > 9"),
        [
            FOUND % (11, "the last signed head (checkpoint 6) covered seq 11 but the log ended at seq 9"),
            "seq 11: differs from signed checkpoint 6 (the log up to seq 11 was rewritten)",
        ],
    ),
    "the whole log and its heads deleted": (
        sql("DELETE FROM audit_events", "DELETE FROM audit_checkpoints"),
        [FOUND % (2, "the log was empty: every event had been deleted")],
    ),
    "the last signed head forged": (
        sql("UPDATE audit_checkpoints SET signature = randomblob(64) WHERE number = 6"),
        [
            FOUND % (13, "the last signed head (checkpoint 6, seq 11) was not one the terminal signed"),
            "checkpoint 6 (seq 11): signature does not verify with the log's audit keys (forged signed head)",
        ],
    ),
}


@pytest.mark.parametrize("name", list(BEHIND_THE_TERMINAL))
def test_the_terminal_records_what_it_finds_instead_of_signing_over_it(tmp_path: Path, name: str) -> None:
    """A sign-in after the tampering writes an event; its head must not make the tampered log look signed."""
    tamper, problems = BEHIND_THE_TERMINAL[name]
    ws = new_workspace(tmp_path / "ws", clock=TickingClock())
    assert ws.audit_public_key is not None
    for i in range(5):
        with ws.transaction() as conn:
            audit.append(conn, "alice", "case.search", subjects={"case": f"C-{i}"}, clock=ws.clock)
            audit.append(conn, "alice", "case.view", subjects={"case": f"C-{i}"}, clock=ws.clock)
    with ws.reading() as conn:
        assert [cp.seq for cp in audit.checkpoints(conn)] == [1, 3, 5, 7, 9, 11]
        drop_triggers(conn)
        tamper(Log(conn, AuditSigningKey.generate(), b""))
        restore_triggers(conn)
    with ws.transaction() as conn:
        mine = audit.append(conn, "ivan", "user.sign_in", clock=ws.clock)
    with ws.reading() as conn:
        result = audit.verify(conn, ws.audit_public_key)
        found = [e for e in audit.events(conn) if e.action == "audit.unsigned_events"]
    ws.close()
    assert result.problems == problems
    assert [(e.seq, e.actor) for e in found] == [(mine.seq + 1, "system")]


def test_a_workspace_whose_last_head_is_malformed_refuses_to_record(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws", clock=TickingClock())
    with ws.reading() as conn:
        drop_triggers(conn)
        conn.execute("UPDATE audit_checkpoints SET signature = 'not bytes' WHERE number = 1")
        restore_triggers(conn)
    with pytest.raises(AuditError, match="audit checkpoint 1 is malformed: run the audit verification"):
        with ws.transaction() as conn:
            audit.append(conn, "ivan", "user.sign_in", clock=ws.clock)
    with ws.reading() as conn:
        assert [e.seq for e in audit.events(conn)] == [1]
    ws.close()


def test_a_workspace_whose_keys_were_changed_refuses_to_record(tmp_path: Path) -> None:
    """A fake rotation to the attacker's key: the terminal's own key no longer signs, so nothing is recorded."""
    terminal_key = AuditSigningKey.generate()
    ws = Workspace.create(tmp_path / "ws", WorkspaceKey.generate(), audit_key=terminal_key, clock=TickingClock())
    with ws.reading() as conn:
        fake_rotation(Log(conn, terminal_key, b""))
    with pytest.raises(AuditError, match="the audit signing key file does not belong to this workspace"):
        with ws.transaction() as conn:
            audit.append(conn, "ivan", "user.sign_in", clock=ws.clock)
    ws.close()


# Properties


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
# audit_keys.added_at is informational (the rotation event says when): it is not vouched for, so not drawn here.
KEY_COLUMNS = ["key_id", "public_key", "introduced_seq"]

transactions = st.lists(st.integers(1, 6), min_size=1, max_size=8)


def heads_of(sizes: list[int]) -> tuple[int, ...]:
    heads = [1]
    for size in sizes:
        heads.append(heads[-1] + size)
    return tuple(heads)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=transactions, kind=st.sampled_from(["edit", "delete", "swap", "checkpoint", "key"]), data=st.data())
def test_any_single_row_tamper_is_detected(sizes: list[int], kind: str, data: st.DataObject) -> None:
    log = build(heads_of(sizes))
    events = heads_of(sizes)[-1]
    seq = data.draw(st.integers(1, events), label="seq")
    drop_triggers(log.conn)
    named: set[int] = set()
    if kind == "edit":
        column = data.draw(st.sampled_from(EVENT_COLUMNS), label="column")
        old = log.conn.execute(f"SELECT {column} FROM audit_events WHERE seq = ?", (seq,)).fetchone()[0]
        if column == "seq":
            new: object = data.draw(st.sampled_from([events + 7, -3, 0]), label="new seq")
        else:
            new = data.draw(
                st.one_of(st.text(max_size=70), st.integers(-(2**63), 2**63 - 1), st.binary(max_size=64)).filter(
                    lambda v: v != old
                ),
                label="new value",
            )
        log.conn.execute(f"UPDATE audit_events SET {column} = ? WHERE seq = ?", (new, seq))
        named = {seq}
    elif kind == "delete":
        log.conn.execute("DELETE FROM audit_events WHERE seq = ?", (seq,))  # the last one too: a head covers it
        named = {seq}
    elif kind == "swap":
        if events < 2:
            reject()
        other = data.draw(st.integers(1, events).filter(lambda s: s != seq), label="other")
        swap(seq, other)(log)
        named = {seq, other}
    else:
        table, columns, ident = (
            ("audit_checkpoints", CHECKPOINT_COLUMNS, "number")
            if kind == "checkpoint"
            else ("audit_keys", KEY_COLUMNS, "introduced_seq")
        )
        row = data.draw(st.integers(1, len(sizes) + 1), label="head") if kind == "checkpoint" else 0
        column = data.draw(st.sampled_from(columns), label="column")
        old = log.conn.execute(f"SELECT {column} FROM {table} WHERE {ident} = ?", (row,)).fetchone()[0]
        new = data.draw(
            st.one_of(st.integers(-5, 100), st.text(max_size=70), st.binary(min_size=32, max_size=64)).filter(
                lambda v: v != old
            ),
            label="new value",
        )
        try:
            log.conn.execute(f"UPDATE {table} SET {column} = ? WHERE {ident} = ?", (new, row))
        except sqlite3.IntegrityError:
            reject()  # two heads cannot share a number
    restore_triggers(log.conn)
    for expect in (None, log.recorded):
        result = audit.verify(log.conn, log.pinned, expect=expect)
        assert not result.ok
        if kind in ("checkpoint", "key"):
            assert any(word in p for p in result.problems for word in ("checkpoint", "key", "signed head")), (
                result.problems
            )
        else:
            assert named <= located(result.problems), result.problems


@settings(max_examples=60, deadline=None)
@given(sizes=transactions, data=st.data())
def test_any_roll_back_is_caught_by_the_recorded_head(sizes: list[int], data: st.DataObject) -> None:
    """Cut back anywhere: between heads verify sees it alone; at a head only ``expect`` does (the documented limit)."""
    heads = heads_of(sizes)
    log = build(heads)
    cut = data.draw(st.integers(0, heads[-1] - 1), label="keep events up to")
    drop_triggers(log.conn)
    log.conn.execute("DELETE FROM audit_events WHERE seq > ?", (cut,))
    if data.draw(st.booleans(), label="heads too"):
        log.conn.execute("DELETE FROM audit_checkpoints WHERE seq > ?", (cut,))
    restore_triggers(log.conn)
    alone = audit.verify(log.conn, log.pinned)
    remaining_heads = [cp.seq for cp in audit.checkpoints(log.conn)]
    if cut in heads and remaining_heads == [h for h in heads if h <= cut]:
        assert alone.ok, alone.problems
    else:
        assert not alone.ok
    with_expect = audit.verify(log.conn, log.pinned, expect=log.recorded)
    assert not with_expect.ok
    assert with_expect.problems[-1] == expected(log, (LOST,))[0]
