"""Signed heads: the terminal's Ed25519 key vouches for the log up to its last event.

A signed head (stored as a numbered "checkpoint") states "event N has hash H" and is signed;
because every event's hash covers its predecessor, the signature covers the whole log up to
N. Heads are numbered and each names the digest of the one before, so removing one shows.

The head is signed at the end of every transaction that writes events (``seal``, which the
workspace calls just before it commits), so the log never has an unsigned tail: events after
the last signed head mean someone wrote to the database behind the terminal's back, or cut
signed heads off. The private key is never in the database (``engine.audit.signing``); the
database keeps the public keys that have signed (``audit_keys``) so the log can be checked by
anyone, and an auditor checks it against a key they recorded themselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.audit._encoding import canonical_json
from engine.audit.clock import Clock, format_utc, utc_now
from engine.audit.signing import AuditSigningKey, key_id_of
from engine.audit.store import GENESIS_HASH
from engine.errors import AuditError

_CHECKPOINT_DOMAIN = "rfr-audit-checkpoint/v1"

PublicKeyInput = bytes | str | Ed25519PublicKey


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the log's event ``seq`` has hash ``event_hash`` (a signed head)."""

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
        """What the next head names as its predecessor."""
        return hashlib.sha256(self.statement()).hexdigest()

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, self.statement())
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class AuditKey:
    """A public key that signs this log's heads from event ``introduced_seq`` on (0: from the start)."""

    key_id: str
    public_key: Ed25519PublicKey
    introduced_seq: int
    added_at: str


def checkpoint_statement(number: int, seq: int, event_hash: str, at: str, key_id: str, prev_digest: str) -> bytes:
    """The exact bytes signed for a head."""
    return canonical_json([_CHECKPOINT_DOMAIN, number, seq, event_hash, at, key_id, prev_digest]).encode("ascii")


# Keys


def register_key(
    conn: Any, key: AuditSigningKey | Ed25519PublicKey, introduced_seq: int, clock: Clock = utc_now
) -> str:
    """Record a public key that signs heads from ``introduced_seq`` on (inside the caller's transaction)."""
    public = key.public_key if isinstance(key, AuditSigningKey) else key
    key_id = key_id_of(public)
    conn.execute(
        "INSERT INTO audit_keys (key_id, public_key, introduced_seq, added_at) VALUES (?, ?, ?, ?)",
        (
            key_id,
            public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
            introduced_seq,
            format_utc(clock()),
        ),
    )
    return key_id


def key_rows(conn: Any) -> list[tuple[str, AuditKey | None]]:
    """Every stored key in the order it was introduced, as (key id, key or None when malformed)."""
    out: list[tuple[str, AuditKey | None]] = []
    for key_id, public, introduced, added in conn.execute(
        "SELECT key_id, public_key, introduced_seq, added_at FROM audit_keys ORDER BY introduced_seq"
    ):
        try:
            parsed = Ed25519PublicKey.from_public_bytes(bytes(public))
        except (TypeError, ValueError):
            out.append((str(key_id), None))
            continue
        ok = isinstance(introduced, int) and key_id_of(parsed) == key_id and isinstance(added, str)
        out.append((str(key_id), AuditKey(str(key_id), parsed, int(introduced), str(added)) if ok else None))
    return out


def current_key(conn: Any) -> AuditKey:
    """The key that signs this log's heads now (the last introduced)."""
    keys = [k for _, k in key_rows(conn) if k is not None]
    if not keys:
        raise AuditError("this workspace records no audit key: it was damaged; restore it from a backup")
    return keys[-1]


def terminal_public_key(conn: Any) -> Ed25519PublicKey:
    """The public key that signs this log's heads now, as stored in the workspace."""
    return current_key(conn).public_key


def export_public_key_pem(conn: Any) -> str:
    """The current public key as PEM (SubjectPublicKeyInfo), for the auditor to keep."""
    return public_key_pem(terminal_public_key(conn))


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
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


# Heads


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
    """Every stored head in number order as (number, head or None when malformed)."""
    return [(row[0], parse_checkpoint_row(row)) for row in conn.execute(_SELECT_CHECKPOINTS)]


def checkpoints(conn: Any) -> list[Checkpoint]:
    """Every stored head in number order (as stored, not verified); raises on a malformed one."""
    parsed = []
    for number, cp in checkpoint_rows(conn):
        if cp is None:
            raise AuditError(f"audit checkpoint {number} is malformed: run the audit verification")
        parsed.append(cp)
    return parsed


def last_checkpoint(conn: Any) -> Checkpoint | None:
    row = conn.execute(
        "SELECT number, seq, event_hash, at, key_id, prev_digest, signature FROM audit_checkpoints "
        "ORDER BY number DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    head = parse_checkpoint_row(row)
    if head is None:
        raise AuditError(f"audit checkpoint {row[0]} is malformed: run the audit verification")
    return head


def checkpoint(conn: Any, key: AuditSigningKey, clock: Clock = utc_now) -> Checkpoint | None:
    """Sign the log up to its last event with ``key``, inside the caller's transaction; None for an empty log.

    If the last head already covers the last event, that head is returned unchanged.
    """
    last_event = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    if not last_event:
        return None
    seq, event_hash = int(last_event[0]), str(last_event[1])
    previous = last_checkpoint(conn)
    if previous is not None and previous.seq == seq and previous.event_hash == event_hash:
        return previous
    number = previous.number + 1 if previous else 1
    prev_digest = previous.digest if previous else GENESIS_HASH
    at = format_utc(clock())
    signature = key.sign(checkpoint_statement(number, seq, event_hash, at, key.key_id, prev_digest))
    conn.execute(
        "INSERT INTO audit_checkpoints (number, seq, event_hash, at, key_id, prev_digest, signature) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (number, seq, event_hash, at, key.key_id, prev_digest, signature),
    )
    return Checkpoint(number, seq, event_hash, at, key.key_id, prev_digest, signature)


def seal(
    conn: Any, key: AuditSigningKey | None, clock: Clock = utc_now, *, since: int | None = None
) -> Checkpoint | None:
    """Sign the head if this transaction wrote events (called just before COMMIT); refuse if it cannot be signed.

    Refusing makes the transaction roll back: an action that cannot be recorded with a signed
    head does not happen.

    ``since``: the last event's seq when the transaction began (the workspace passes it). The
    log up to there must be covered exactly by a genuine signed head; if it is not (events
    written, or signed heads deleted, behind the terminal's back), a new head would vouch for
    what the terminal never wrote. So the terminal first records what it found
    (``audit.unsigned_events``, which ``verify`` always reports) and only then signs.
    """
    last_event = conn.execute("SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    if last_event is None:
        return None
    head = conn.execute("SELECT seq FROM audit_checkpoints ORDER BY number DESC LIMIT 1").fetchone()
    if head is not None and head[0] == last_event[0]:
        return None
    if key is None:
        raise AuditError(
            "this workspace was opened without the terminal's audit signing key, so nothing can be recorded: "
            "open it through the terminal (its audit key file)"
        )
    stored = current_key(conn)
    if stored.key_id != key.key_id:
        raise AuditError(
            "the audit signing key file does not belong to this workspace (it records key "
            f"{stored.key_id[:16]}, the file holds {key.key_id[:16]}): configure the terminal's own key file"
        )
    if since is not None:
        found = unvouched(conn, stored, since)
        if found is not None:
            from engine.audit.chain import append

            append(conn, "system", UNSIGNED_EVENTS, details={"found": found}, clock=clock)
    return checkpoint(conn, key, clock)


UNSIGNED_EVENTS = "audit.unsigned_events"
"""The action of the event the terminal writes when it finds the log not covered by its own signed heads."""


def unvouched(conn: Any, current: AuditKey, since: int) -> str | None:
    """What is wrong with the log up to seq ``since`` as the terminal left it, or None when its last head covers it.

    Covered means: the last signed head is at ``since``, names that event's stored hash, and
    verifies with the current key (or, right after a rotation, with the key that handed over).
    """
    if since == 0:
        return "the log was empty: every event had been deleted"
    head = last_checkpoint(conn)  # a malformed one refuses: nothing is signed after it
    if head is None:
        return f"no signed head covered seq 1 to seq {since}"
    if head.seq > since:
        return (
            f"the last signed head (checkpoint {head.number}) covered seq {head.seq} but the log ended at seq {since}"
        )
    if head.seq < since:
        span = f"seq {since}" if head.seq + 1 == since else f"seq {head.seq + 1} to seq {since}"
        return f"{span} followed the last signed head (checkpoint {head.number})"
    row = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (since,)).fetchone()
    keys = {k.key_id: k for _, k in key_rows(conn) if k is not None}
    signer = keys.get(head.key_id)
    may_sign = head.key_id == current.key_id or current.introduced_seq == since
    if row is None or row[0] != head.event_hash or signer is None or not may_sign:
        return f"the last signed head (checkpoint {head.number}, seq {since}) was not one the terminal signed"
    if not head.signature_valid(signer.public_key):
        return f"the last signed head (checkpoint {head.number}, seq {since}) was not one the terminal signed"
    return None
