"""Tables of the audit log: events, signed heads (``audit_checkpoints``) and the audit public keys.

The triggers make the log append-only for the application: an UPDATE or DELETE
of an event, signed head or key aborts, and an event can only be inserted right after
the last one. Anyone with the database key can still drop a trigger; that is
why ``engine.audit.verify`` checks the hashes and signatures (and reports a
missing or altered trigger) rather than trusting the triggers.

Only public keys are stored here (``audit_keys``). Migration 2 removed the private key that
version 1 kept in the database (``audit_terminal_key``), because the workspace key must not be
enough to re-sign a forged log: the private key is now the terminal's own file
(``engine.audit.signing``).
"""

from __future__ import annotations

from engine.schema import Migration

GENESIS_HASH = "0" * 64

EVENTS_TABLE = """
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subjects TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""

CHECKPOINTS_TABLE = """
CREATE TABLE audit_checkpoints (
    number INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    event_hash TEXT NOT NULL,
    at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    prev_digest TEXT NOT NULL,
    signature BLOB NOT NULL
);
"""

# Version 1 only: the private key under the workspace key (removed by migration 2).
KEY_TABLE = """
CREATE TABLE audit_terminal_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_id TEXT NOT NULL,
    public_key BLOB NOT NULL,
    private_key BLOB NOT NULL,
    created_at TEXT NOT NULL
);
"""

# name -> CREATE TRIGGER statement; verify() compares sqlite_master against these.
# In audit_events_in_order, hex(zeroblob(32)) is GENESIS_HASH: 64 zeros.
TRIGGERS: dict[str, str] = {
    "audit_events_no_update": """
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: events cannot be changed');
END;
""",
    "audit_events_no_delete": """
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: events cannot be deleted');
END;
""",
    "audit_events_in_order": """
CREATE TRIGGER audit_events_in_order BEFORE INSERT ON audit_events
WHEN NEW.seq IS NOT COALESCE((SELECT MAX(seq) FROM audit_events), 0) + 1
  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), hex(zeroblob(32)))
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: an event must follow the last one');
END;
""",
    "audit_checkpoints_no_update": """
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints cannot be changed');
END;
""",
    "audit_checkpoints_no_delete": """
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints cannot be deleted');
END;
""",
    "audit_checkpoints_in_order": """
CREATE TRIGGER audit_checkpoints_in_order BEFORE INSERT ON audit_checkpoints
WHEN NEW.number IS NOT COALESCE((SELECT MAX(number) FROM audit_checkpoints), 0) + 1
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only: a checkpoint must follow the last one');
END;
""",
}

# Every key that has signed heads of this log: the first (introduced_seq 0, named by the
# workspace.create event) and each later one introduced by an audit.key_rotated event at
# introduced_seq. Public halves only.
KEYS_TABLE = """
CREATE TABLE audit_keys (
    key_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    introduced_seq INTEGER NOT NULL UNIQUE,
    added_at TEXT NOT NULL
);
"""

KEY_TRIGGERS: dict[str, str] = {
    "audit_keys_no_update": """
CREATE TRIGGER audit_keys_no_update BEFORE UPDATE ON audit_keys
BEGIN
    SELECT RAISE(ABORT, 'audit keys cannot be changed: rotate to a new key instead');
END;
""",
    "audit_keys_no_delete": """
CREATE TRIGGER audit_keys_no_delete BEFORE DELETE ON audit_keys
BEGIN
    SELECT RAISE(ABORT, 'audit keys cannot be deleted');
END;
""",
}

_COPY_KEY = """
INSERT INTO audit_keys (key_id, public_key, introduced_seq, added_at)
    SELECT key_id, public_key, 0, created_at FROM audit_terminal_key;
DROP TABLE audit_terminal_key;
"""
_MOVE_KEYS_OUT = KEYS_TABLE + _COPY_KEY + "".join(KEY_TRIGGERS.values())

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "audit events, signed checkpoints, terminal signing key",
        EVENTS_TABLE + CHECKPOINTS_TABLE + KEY_TABLE + "".join(TRIGGERS.values()),
    ),
    Migration(2, "audit private key out of the database; public keys only", _MOVE_KEYS_OUT),
]

ALL_TRIGGERS: dict[str, str] = {**TRIGGERS, **KEY_TRIGGERS}


def normalise_sql(sql: str) -> str:
    """Whitespace-insensitive form of a statement, to compare with ``sqlite_master.sql``."""
    return " ".join(sql.replace(";", " ; ").split()).removesuffix(" ;")
