"""Signed checkpoints: the terminal's Ed25519 key vouches for the chain up to an event.

A checkpoint states "event N has hash H" and is signed; because every event's hash
covers its predecessor, the signature covers the whole log up to N. Checkpoints
are numbered and each names the digest of the one before, so removing one from
the middle shows. Events after the last checkpoint are protected by the chain
only: someone holding the database key could cut them off or rewrite them and
re-hash, which is why checkpoints are frequent and bundles leave the terminal.

The private key lives in the (encrypted) workspace database; the public key is
exported so an auditor can verify with a copy they trust rather than the one in
the database under test.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.audit._encoding import canonical_json
from engine.audit.clock import Clock, format_utc, utc_now
from engine.audit.store import GENESIS_HASH
from engine.errors import AuditError

_CHECKPOINT_DOMAIN = "rfr-audit-checkpoint/v1"

PublicKeyInput = bytes | str | Ed25519PublicKey


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the log's event ``seq`` has hash ``event_hash``."""

    number: int
    seq: int
    event_hash: str
    at: str
    key_id: str
    prev_digest: str
    signature: bytes

    def statement(self) -> bytes:
        return checkpoint_statement(self.number, self.seq, self.event_hash, self.at, self.key_id, self.prev_digest)

    @property
    def digest(self) -> str:
        """What the next checkpoint names as its predecessor."""
        return hashlib.sha256(self.statement()).hexdigest()

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, self.statement())
        except InvalidSignature:
            return False
        return True


def checkpoint_statement(number: int, seq: int, event_hash: str, at: str, key_id: str, prev_digest: str) -> bytes:
    """The exact bytes signed for a checkpoint."""
    return canonical_json([_CHECKPOINT_DOMAIN, number, seq, event_hash, at, key_id, prev_digest]).encode("ascii")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """sha256 (hex) of the raw 32-byte public key: names the terminal's key in checkpoints."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def ensure_terminal_key(conn: Any, clock: Clock = utc_now) -> str:
    """Create the terminal's signing key if it has none (inside the caller's transaction); return its key id."""
    row = conn.execute("SELECT key_id FROM audit_terminal_key WHERE id = 1").fetchone()
    if row:
        return str(row[0])
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    key_id = key_id_of(public)
    conn.execute(
        "INSERT INTO audit_terminal_key (id, key_id, public_key, private_key, created_at) VALUES (1, ?, ?, ?, ?)",
        (
            key_id,
            public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
            private.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            ),
            format_utc(clock()),
        ),
    )
    return key_id


def _private_key(conn: Any) -> Ed25519PrivateKey:
    row = conn.execute("SELECT private_key FROM audit_terminal_key WHERE id = 1").fetchone()
    if not row:
        raise AuditError("this workspace has no terminal signing key yet; it is created with the first checkpoint")
    return Ed25519PrivateKey.from_private_bytes(bytes(row[0]))


def terminal_public_key(conn: Any) -> Ed25519PublicKey:
    """The terminal's public key as stored in the workspace."""
    row = conn.execute("SELECT public_key FROM audit_terminal_key WHERE id = 1").fetchone()
    if not row:
        raise AuditError("this workspace has no terminal signing key yet; it is created with the first checkpoint")
    return Ed25519PublicKey.from_public_bytes(bytes(row[0]))


def export_public_key_pem(conn: Any) -> str:
    """The terminal's public key as PEM (SubjectPublicKeyInfo), for the auditor to keep."""
    return (
        terminal_public_key(conn)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def load_public_key(data: PublicKeyInput) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object, 32 raw bytes, 64 hex digits, or PEM text/bytes."""
    if isinstance(data, Ed25519PublicKey):
        return data
    if isinstance(data, str) and len(data.strip()) == 64:
        try:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.strip()))
        except ValueError:
            pass
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else bytes(data)
    if len(raw) == 32:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError:
        raise AuditError("the public key is neither PEM nor 32 raw bytes; export it again from the terminal") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError("the public key is not an Ed25519 key; use the terminal's exported audit key")
    return key


def parse_checkpoint_row(row: Any) -> Checkpoint | None:
    """A stored row as a ``Checkpoint``, or None if a field has the wrong type (SQLite columns are not typed)."""
    number, seq, event_hash, at, key_id, prev_digest, signature = row
    ints_ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (number, seq))
    texts_ok = all(isinstance(v, str) for v in (event_hash, at, key_id, prev_digest))
    if not (ints_ok and texts_ok and isinstance(signature, bytes)):
        return None
    return Checkpoint(number, seq, event_hash, at, key_id, prev_digest, signature)


_SELECT_CHECKPOINTS = (
    "SELECT number, seq, event_hash, at, key_id, prev_digest, signature FROM audit_checkpoints ORDER BY number"
)


def checkpoint_rows(conn: Any) -> list[tuple[int, Checkpoint | None]]:
    """Every stored checkpoint in number order as (number, checkpoint or None when malformed)."""
    return [(row[0], parse_checkpoint_row(row)) for row in conn.execute(_SELECT_CHECKPOINTS)]


def checkpoints(conn: Any) -> list[Checkpoint]:
    """Every stored checkpoint in number order (as stored, not verified); raises on a malformed one."""
    parsed = []
    for number, cp in checkpoint_rows(conn):
        if cp is None:
            raise AuditError(f"audit checkpoint {number} is malformed: run the audit verification")
        parsed.append(cp)
    return parsed


def checkpoint(conn: Any, clock: Clock = utc_now) -> Checkpoint | None:
    """Sign the log up to its last event, inside the caller's transaction; None for an empty log.

    If the last checkpoint already covers the last event, that checkpoint is returned unchanged.
    """
    last_event = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    if not last_event:
        return None
    seq, event_hash = int(last_event[0]), str(last_event[1])
    row = conn.execute(
        "SELECT number, seq, event_hash, at, key_id, prev_digest, signature FROM audit_checkpoints "
        "ORDER BY number DESC LIMIT 1"
    ).fetchone()
    previous = parse_checkpoint_row(row) if row else None
    if row and previous is None:
        raise AuditError(f"audit checkpoint {row[0]} is malformed: run the audit verification")
    if previous is not None and previous.seq == seq and previous.event_hash == event_hash:
        return previous
    key_id = ensure_terminal_key(conn, clock)
    private = _private_key(conn)
    number = previous.number + 1 if previous else 1
    prev_digest = previous.digest if previous else GENESIS_HASH
    at = format_utc(clock())
    signature = private.sign(checkpoint_statement(number, seq, event_hash, at, key_id, prev_digest))
    conn.execute(
        "INSERT INTO audit_checkpoints (number, seq, event_hash, at, key_id, prev_digest, signature) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (number, seq, event_hash, at, key_id, prev_digest, signature),
    )
    return Checkpoint(number, seq, event_hash, at, key_id, prev_digest, signature)
