"""The append-only, hash-chained audit log with checkpoints signed by the terminal's Ed25519 key.

``append`` adds an event inside the caller's transaction; ``checkpoint`` signs the log up to
now; ``verify`` recomputes everything and names each problem by sequence number.
"""

from engine.audit.chain import DEFAULT_CHECKPOINT_EVERY, AuditEvent, append, event_hash, events
from engine.audit.checkpoints import (
    Checkpoint,
    checkpoint,
    checkpoints,
    ensure_terminal_key,
    export_public_key_pem,
    key_id_of,
    load_public_key,
    terminal_public_key,
)
from engine.audit.clock import Clock, format_utc, parse_utc, utc_now
from engine.audit.store import GENESIS_HASH, MIGRATIONS, create_schema
from engine.audit.verify import VerifyResult, verify

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "GENESIS_HASH",
    "MIGRATIONS",
    "AuditEvent",
    "Checkpoint",
    "Clock",
    "VerifyResult",
    "append",
    "checkpoint",
    "checkpoints",
    "create_schema",
    "ensure_terminal_key",
    "event_hash",
    "events",
    "export_public_key_pem",
    "format_utc",
    "key_id_of",
    "load_public_key",
    "parse_utc",
    "terminal_public_key",
    "utc_now",
    "verify",
]
