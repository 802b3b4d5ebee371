"""The append-only, hash-chained audit log, its head signed by the terminal's own Ed25519 key.

``append`` adds an event inside the caller's transaction; the workspace ``seal``s (signs the
head) just before every commit that wrote events; ``verify`` recomputes everything and names
each problem by sequence number. The private key is a file of the terminal
(``AuditSigningKey``), never in the database.
"""

from engine.audit.chain import AuditEvent, append, event_hash, events
from engine.audit.checkpoints import (
    AuditKey,
    Checkpoint,
    checkpoint,
    checkpoints,
    current_key,
    export_public_key_pem,
    last_checkpoint,
    load_public_key,
    public_key_pem,
    seal,
    terminal_public_key,
)
from engine.audit.clock import Clock, format_utc, parse_utc, utc_now
from engine.audit.log import SYSTEM_ACTOR, rotate_key, start_log
from engine.audit.signing import AuditSigningKey, key_id_of
from engine.audit.store import GENESIS_HASH, MIGRATIONS
from engine.audit.verify import VerifyResult, verify

__all__ = [
    "GENESIS_HASH",
    "MIGRATIONS",
    "SYSTEM_ACTOR",
    "AuditEvent",
    "AuditKey",
    "AuditSigningKey",
    "Checkpoint",
    "Clock",
    "VerifyResult",
    "append",
    "checkpoint",
    "checkpoints",
    "current_key",
    "event_hash",
    "events",
    "export_public_key_pem",
    "format_utc",
    "key_id_of",
    "last_checkpoint",
    "load_public_key",
    "parse_utc",
    "public_key_pem",
    "rotate_key",
    "seal",
    "start_log",
    "terminal_public_key",
    "utc_now",
    "verify",
]
