"""Tables of the audit log: events, signed checkpoints and the terminal's signing key.

The triggers make the log append-only for the application: an UPDATE or DELETE
of an event or checkpoint aborts, and an event can only be inserted right after
the last one. Anyone with the database key can still drop a trigger; that is
why ``engine.audit.verify`` checks the hashes and signatures (and reports a
missing or altered trigger) rather than trusting the triggers.
"""

from __future__ import annotations

from typing import Any

from engine.schema import Migration, split_statements

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

# The database is encrypted, so the private key is at rest under the workspace key.
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

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "audit events, signed checkpoints, terminal signing key",
        EVENTS_TABLE + CHECKPOINTS_TABLE + KEY_TABLE + "".join(TRIGGERS.values()),
    ),
]


def normalise_sql(sql: str) -> str:
    """Whitespace-insensitive form of a statement, to compare with ``sqlite_master.sql``."""
    return " ".join(sql.replace(";", " ; ").split()).removesuffix(" ;")


def create_schema(conn: Any) -> None:
    """Create the audit tables on a fresh connection (tests; the workspace runs ``MIGRATIONS`` itself)."""
    for migration in MIGRATIONS:
        assert isinstance(migration.apply, str)
        for statement in split_statements(migration.apply):
            conn.execute(statement)
    if conn.in_transaction:
        conn.execute("COMMIT")
