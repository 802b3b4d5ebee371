"""Check the audit log and say exactly what is wrong with it, by sequence number.

Nothing stored is trusted: every event's hash is recomputed, every link checked,
every signed head's signature verified, and the keys checked against a public key
the caller supplies (an auditor's copy, or the terminal's own key file; not the
keys inside the database under test). Problems are named in the words an audit
team uses: an event edited, deleted, reordered, events after the last signed head,
signed heads deleted or forged, a key inserted, the append-only triggers removed.

What this can and cannot detect without an outside record: anyone holding only the
workspace key cannot sign, so any change they make shows, with one exception: cutting
the log back to one of its own earlier signed heads (the events and heads after it
deleted together) leaves a genuine, shorter log. Someone holding the workspace key AND
the terminal's audit signing key file could also rebuild or roll back the whole log and
sign it. Only a head recorded outside the terminal (``expect``: the auditor's note, or
the last exported audit bundle) shows either.

When the terminal next writes after someone changed the log behind its back, it does not
sign over what it found: it records an ``audit.unsigned_events`` event first, which this
always reports.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from engine.audit.chain import event_hash
from engine.audit.checkpoints import (
    UNSIGNED_EVENTS,
    AuditKey,
    PublicKeyInput,
    checkpoint_rows,
    key_rows,
    load_public_key,
)
from engine.audit.signing import key_id_of
from engine.audit.store import ALL_TRIGGERS, GENESIS_HASH, normalise_sql

_AUDIT_TABLES = ("audit_events", "audit_checkpoints", "audit_keys")
_SEARCH_WINDOW = 4  # how far from its slot a moved event is looked for when the chain cannot place it
_PROGRESS_EVERY = 5000  # events between progress reports


@dataclass(frozen=True)
class VerifyResult:
    """The verdict: ``ok`` only when there is no problem at all."""

    ok: bool
    events: int
    problems: list[str] = field(default_factory=list)
    checkpoints: int = 0
    signed_through: int = 0
    head: tuple[int, str] | None = None
    """(seq, hash) of the last event a valid signed head covers: what an auditor records for ``expect``."""
    keys: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Row:
    seq: int
    at: str
    actor: str
    action: str
    subjects: str
    details: str
    prev_hash: str
    hash: str

    def hash_at(self, seq: int) -> str:
        return event_hash(seq, self.at, self.actor, self.action, self.subjects, self.details, self.prev_hash)


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first} to seq {last}"


def _original_positions(rows: list[_Row]) -> dict[int, int]:
    """Walk the chain from the genesis hash through the stored hashes: where each event was first written."""
    by_prev: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_prev[row.prev_hash].append(row)
    positions: dict[int, int] = {}
    current, position = GENESIS_HASH, 1
    while True:
        following = [r for r in by_prev.get(current, []) if r.seq not in positions]
        if not following:
            return positions
        row = next((r for r in following if r.hash_at(position) == r.hash), following[0])
        positions[row.seq] = position
        current, position = row.hash, position + 1


def _classify(rows: list[_Row]) -> dict[int, tuple[str, int]]:
    """For each row whose hash does not match its slot: ('edited', seq), ('moved', original) or ('copy', original)."""
    by_seq = {r.seq: r for r in rows}
    by_hash: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_hash[row.hash].append(row)
    intact = {r.seq for r in rows if r.hash_at(r.seq) == r.hash}
    positions = _original_positions(rows) if len(intact) < len(rows) else {}
    verdicts: dict[int, tuple[str, int]] = {}
    for row in rows:
        if row.seq in intact:
            continue
        candidates: list[int] = []
        if row.seq in positions:
            candidates.append(positions[row.seq])
        if row.prev_hash == GENESIS_HASH:
            candidates.append(1)
        for before in by_hash.get(row.prev_hash, []):
            candidates.append(positions.get(before.seq, before.seq) + 1)
        for distance in range(1, _SEARCH_WINDOW + 1):
            candidates += [row.seq + distance, row.seq - distance]
        original = next((c for c in candidates if c >= 1 and c != row.seq and row.hash_at(c) == row.hash), None)
        if original is None:
            verdicts[row.seq] = ("edited", row.seq)
        else:
            twin = by_seq.get(original)
            kind = "copy" if twin is not None and twin.hash == row.hash and original in intact else "moved"
            verdicts[row.seq] = (kind, original)
    return verdicts


def _event_problems(rows: list[_Row]) -> list[tuple[int, str]]:
    verdicts = _classify(rows)
    problems: list[tuple[int, str]] = []
    previous: _Row | None = None
    for row in rows:
        expected = max(previous.seq + 1, 1) if previous else 1
        if row.seq < 1:
            problems.append((row.seq, f"seq {row.seq}: not a valid sequence number (event inserted)"))
        elif row.seq > expected:
            where = (
                f"the log starts at seq {row.seq}"
                if expected == 1
                else f"gap between seq {expected - 1} and seq {row.seq}"
            )
            problems.append((expected, f"events deleted: {_span(expected, row.seq - 1)} missing ({where})"))
        if row.seq not in verdicts:
            if row.seq == 1 and row.prev_hash != GENESIS_HASH:
                problems.append((1, "seq 1: chain broken: it does not start from the genesis hash (log rewritten)"))
            elif (
                previous is not None
                and previous.seq == row.seq - 1
                and previous.seq not in verdicts
                and row.prev_hash != previous.hash
            ):
                problems.append(
                    (
                        row.seq,
                        f"seq {row.seq}: chain broken: it does not follow seq {previous.seq} "
                        "(one of them was rewritten and re-hashed)",
                    )
                )
        previous = row

    # Consecutive rows with the same verdict and offset become one line, so a renumbered log reads clearly.
    runs: list[tuple[str, int, int, int]] = []  # kind, first seq, last seq, offset to the original
    for seq in sorted(verdicts):
        kind, original = verdicts[seq]
        offset = original - seq
        if runs and runs[-1][0] == kind and runs[-1][2] == seq - 1 and runs[-1][3] == offset:
            runs[-1] = (kind, runs[-1][1], seq, offset)
        else:
            runs.append((kind, seq, seq, offset))
    for kind, first, last, offset in runs:
        if kind == "edited":
            what = "event edited" if first == last else "events edited"
            problems.append((first, f"{_span(first, last)}: hash mismatch ({what})"))
        elif kind == "copy":
            problems.append(
                (first, f"{_span(first, last)}: a copy of {_span(first + offset, last + offset)} (events inserted)")
            )
        elif first == last:
            problems.append((first, f"seq {first}: holds event {first + offset} (events reordered)"))
        else:
            problems.append(
                (
                    first,
                    f"seq {first} to seq {last}: hold events {first + offset} to {last + offset} "
                    "(events reordered or renumbered)",
                )
            )
    return problems


def _found_by_terminal(rows: list[_Row]) -> list[tuple[int, str]]:
    """What the terminal itself recorded finding when it next wrote: a log not covered by its signed heads."""
    found: list[tuple[int, str]] = []
    for row in rows:
        if row.action != UNSIGNED_EVENTS:
            continue
        try:
            what = str(json.loads(row.details)["found"])
        except (ValueError, TypeError, KeyError):
            what = "the log not covered by its signed heads"
        found.append(
            (
                row.seq,
                f"seq {row.seq}: the terminal found, when it next wrote, that {what} "
                "(events written behind its back, or signed heads deleted)",
            )
        )
    return found


def _trigger_problems(conn: Any) -> list[str]:
    installed = {
        str(name): str(sql or "")
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?, ?)", _AUDIT_TABLES
        )
    }
    problems = []
    for name, sql in ALL_TRIGGERS.items():
        if name not in installed:
            problems.append(f"append-only protection removed: trigger {name} is missing")
        elif normalise_sql(installed[name]) != normalise_sql(sql):
            problems.append(f"append-only protection altered: trigger {name} is not the one installed")
    for name in sorted(set(installed) - set(ALL_TRIGGERS)):
        problems.append(f"unexpected trigger {name} on the audit tables")
    return problems


def _named_by_rotation(key: AuditKey, by_seq: dict[int, _Row]) -> bool:
    """Whether the event at the key's introduced_seq is an audit.key_rotated naming it."""
    row = by_seq.get(key.introduced_seq)
    if row is None or row.action != "audit.key_rotated":
        return False
    try:
        named = json.loads(row.details).get("new_key_id")
    except (ValueError, AttributeError):
        return False
    return bool(named == key.key_id)


def _key_problems(keys: list[AuditKey], rows: list[_Row]) -> list[str]:
    """Each key after the first must be introduced by an audit.key_rotated event naming it, at its seq."""
    problems: list[str] = []
    by_seq = {r.seq: r for r in rows}
    for key in keys:
        if key.introduced_seq != 0 and not _named_by_rotation(key, by_seq):
            problems.append(
                f"audit key {key.key_id[:16]} is not introduced by a key rotation at seq {key.introduced_seq} "
                "(key inserted)"
            )
    if sum(1 for k in keys if k.introduced_seq == 0) != 1:
        problems.append("the log does not name exactly one first audit key (keys altered)")
    return problems


def _period(keys: list[AuditKey], key_id: str) -> tuple[int, int | None] | None:
    """The seqs a key may sign heads for: after its introduction, up to and including the next key's."""
    for i, key in enumerate(keys):
        if key.key_id == key_id:
            until = keys[i + 1].introduced_seq if i + 1 < len(keys) else None
            return key.introduced_seq, until
    return None


def verify(
    conn: Any,
    public_key: PublicKeyInput | None = None,
    *,
    expect: tuple[int, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    """Verify the whole log and its signed heads (``progress(events read, events in all)`` as it reads).

    ``public_key``: the key the caller trusts (an auditor's recorded copy, or the terminal's own key
    file); the last signed head must be signed with it or with a key it handed over to by a signed
    rotation. None checks the log against the keys stored in it only, which shows any change by
    someone without the signing key but cannot show a rebuilt log. ``expect`` (seq, hash): a head
    recorded outside the terminal, which the log must still hold and a signed head must cover.
    """
    trusted = None if public_key is None else key_id_of(load_public_key(public_key))
    tables = {
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)", _AUDIT_TABLES
        )
    }
    missing = [t for t in _AUDIT_TABLES if t not in tables]
    if missing:
        return VerifyResult(False, 0, [f"audit table {t} is missing (dropped)" for t in missing])

    problems: list[str] = _trigger_problems(conn)
    total = int(conn.execute("SELECT count(*) FROM audit_events").fetchone()[0])
    rows: list[_Row] = []
    for r in conn.execute(
        "SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit_events ORDER BY seq"
    ):
        rows.append(_Row(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]), str(r[7])))
        if progress is not None and len(rows) % _PROGRESS_EVERY == 0:
            progress(len(rows), total)
    if progress is not None:
        progress(len(rows), total)
    keys: list[AuditKey] = []
    for key_id, key in key_rows(conn):
        if key is None:
            problems.append(f"audit key {key_id[:16]}: malformed record (key altered)")
        else:
            keys.append(key)
    problems += _key_problems(keys, rows)
    known = {k.key_id: k for k in keys}
    if trusted is not None and trusted not in known:
        problems.append(
            f"the log is not signed with the public key given ({trusted[:16]}); its keys are "
            f"{', '.join(k[:16] for k in known) or 'none'}: the log was rebuilt, or the key is another terminal's"
        )

    event_problems = _event_problems(rows) + _found_by_terminal(rows)
    problems += [message for _, message in sorted(event_problems, key=lambda p: p[0])]
    first_bad = min((seq for seq, _ in event_problems), default=None)

    by_seq = {r.seq: r for r in rows}
    last_seq = rows[-1].seq if rows else 0
    valid = 0
    signed_through = 0
    head: tuple[int, str] | None = None
    trusted_from = None if trusted is None or trusted not in known else known[trusted].introduced_seq
    expected_number = 1
    expected_prev: str | None = GENESIS_HASH  # None after a forged head: its genuine digest is unknown
    vouched: set[tuple[int, str]] = set()  # (seq, key id) of every valid signed head
    for number, cp in checkpoint_rows(conn):
        if number != expected_number:
            gap = (
                f"checkpoint {expected_number}"
                if number - 1 == expected_number
                else f"checkpoints {expected_number} to {number - 1}"
            )
            problems.append(f"signed heads deleted: {gap} missing")
        if cp is None:
            problems.append(f"checkpoint {number}: malformed record (forged signed head)")
            expected_number, expected_prev = number + 1, None
            continue
        key = known.get(cp.key_id)
        signed = key is not None and cp.signature_valid(key.public_key)
        period = _period(keys, cp.key_id)
        if not signed:
            problems.append(
                f"checkpoint {cp.number} (seq {cp.seq}): signature does not verify with the log's audit keys "
                "(forged signed head)"
            )
        elif cp.number == expected_number and expected_prev is not None and cp.prev_digest != expected_prev:
            problems.append(
                f"checkpoint {cp.number}: does not follow checkpoint {cp.number - 1} (signed heads altered)"
            )
        elif period is not None and not (period[0] < cp.seq and (period[1] is None or cp.seq <= period[1])):
            problems.append(
                f"checkpoint {cp.number} (seq {cp.seq}): signed with key {cp.key_id[:16]} outside the events it "
                "may sign (forged signed head)"
            )
        elif cp.seq > last_seq:
            problems.append(
                f"log truncated: checkpoint {cp.number} covers seq {cp.seq} but the log ends at seq {last_seq}"
            )
        elif cp.seq not in by_seq:
            problems.append(f"checkpoint {cp.number} covers seq {cp.seq}, which is missing (events deleted)")
        elif by_seq[cp.seq].hash != cp.event_hash:
            problems.append(
                f"seq {cp.seq}: differs from signed checkpoint {cp.number} (the log up to seq {cp.seq} was rewritten)"
            )
        else:
            valid += 1
            vouched.add((cp.seq, cp.key_id))
            if (first_bad is None or cp.seq < first_bad) and cp.seq >= signed_through:
                signed_through = cp.seq
                head = (cp.seq, cp.event_hash)
        expected_number, expected_prev = cp.number + 1, (cp.digest if signed else None)

    # A rotation is real only if the key being retired signed the head of the event that hands over:
    # anyone can append an audit.key_rotated event and a key row, but only the old key can vouch for them.
    for retired, key in pairwise(keys):
        if _named_by_rotation(key, by_seq) and (key.introduced_seq, retired.key_id) not in vouched:
            problems.append(
                f"audit key {key.key_id[:16]}: the rotation at seq {key.introduced_seq} is not signed by the key "
                f"it replaces ({retired.key_id[:16]}) (key inserted)"
            )
    if not rows and keys:
        # start_log registers the first key and writes the first event in one transaction: never one without the other.
        problems.append(
            f"the log has no events, yet it was started with audit key {keys[0].key_id[:16]}: every event was deleted"
        )
    if rows and first_bad is None:
        if valid == 0:
            problems.append(
                f"no signed head covers the log: {_span(rows[0].seq, last_seq)} are unsigned "
                "(signed heads deleted, or events written behind the terminal's back)"
            )
        elif signed_through < last_seq:
            verb = "follows" if signed_through + 1 == last_seq else "follow"
            problems.append(
                f"{_span(signed_through + 1, last_seq)} {verb} the last signed head (seq {signed_through}): "
                "events written behind the terminal's back, or signed heads deleted"
            )
    if trusted_from is not None and head is not None and valid:
        last_key = next(
            (cp.key_id for _, cp in reversed(checkpoint_rows(conn)) if cp is not None and cp.seq == head[0]), None
        )
        last = known.get(last_key or "")
        if last is None or last.introduced_seq < trusted_from:
            problems.append(
                f"the last signed head (seq {head[0]}) is not signed with the public key given or a key it "
                "handed over to"
            )
    if expect is not None:
        seq, digest = expect
        row = by_seq.get(seq)
        if row is None or row.hash != digest.lower():
            problems.append(
                f"the log does not hold the head recorded outside the terminal (seq {seq}, hash {digest[:16]}): "
                "it was rolled back or rebuilt"
            )
        elif seq > signed_through:
            problems.append(f"the recorded head seq {seq} is not covered by a valid signed head")
    return VerifyResult(not problems, len(rows), problems, valid, signed_through, head, tuple(k.key_id for k in keys))
