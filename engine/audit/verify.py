"""Check the audit log and say exactly what is wrong with it, by sequence number.

Nothing stored is trusted: every event's hash is recomputed, every link checked,
every checkpoint signature verified with a public key the caller supplies (an
auditor's copy, not the one inside the database under test). Problems are
named in the words an audit team uses: an event edited, deleted, reordered,
the log truncated after a signed checkpoint, a checkpoint forged, the
append-only triggers removed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.audit.chain import event_hash
from engine.audit.checkpoints import PublicKeyInput, checkpoint_rows, key_id_of, load_public_key
from engine.audit.store import GENESIS_HASH, TRIGGERS, normalise_sql

_AUDIT_TABLES = ("audit_events", "audit_checkpoints", "audit_terminal_key")
_SEARCH_WINDOW = 4  # how far from its slot a moved event is looked for when the chain cannot place it


@dataclass(frozen=True)
class VerifyResult:
    """The verdict: ``ok`` only when there is no problem at all."""

    ok: bool
    events: int
    problems: list[str] = field(default_factory=list)
    checkpoints: int = 0
    signed_through: int = 0

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


def _trigger_problems(conn: Any) -> list[str]:
    installed = {
        str(name): str(sql or "")
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?, ?)", _AUDIT_TABLES
        )
    }
    problems = []
    for name, sql in TRIGGERS.items():
        if name not in installed:
            problems.append(f"append-only protection removed: trigger {name} is missing")
        elif normalise_sql(installed[name]) != normalise_sql(sql):
            problems.append(f"append-only protection altered: trigger {name} is not the one installed")
    for name in sorted(set(installed) - set(TRIGGERS)):
        problems.append(f"unexpected trigger {name} on the audit tables")
    return problems


def verify(conn: Any, public_key: PublicKeyInput) -> VerifyResult:
    """Verify the whole log and its checkpoints against the terminal's public key."""
    key = load_public_key(public_key)
    key_id = key_id_of(key)
    tables = {
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)", _AUDIT_TABLES
        )
    }
    missing = [t for t in _AUDIT_TABLES[:2] if t not in tables]
    if missing:
        return VerifyResult(False, 0, [f"audit table {t} is missing (dropped)" for t in missing])

    problems: list[str] = []
    if "audit_terminal_key" in tables:
        stored = conn.execute("SELECT key_id FROM audit_terminal_key WHERE id = 1").fetchone()
        if stored and str(stored[0]) != key_id:
            problems.append(
                f"the workspace's terminal key ({str(stored[0])[:16]}) is not the public key given ({key_id[:16]}): "
                "verify with the key exported from this terminal"
            )
    problems += _trigger_problems(conn)

    rows = [
        _Row(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]), str(r[7]))
        for r in conn.execute(
            "SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit_events ORDER BY seq"
        )
    ]
    event_problems = _event_problems(rows)
    problems += [message for _, message in sorted(event_problems, key=lambda p: p[0])]
    first_bad = min((seq for seq, _ in event_problems), default=None)

    by_seq = {r.seq: r for r in rows}
    last_seq = rows[-1].seq if rows else 0
    valid = 0
    signed_through = 0
    expected_number = 1
    expected_prev: str | None = GENESIS_HASH  # None after a forged checkpoint: its genuine digest is unknown
    for number, cp in checkpoint_rows(conn):
        if number != expected_number:
            gap = (
                f"checkpoint {expected_number}"
                if number - 1 == expected_number
                else f"checkpoints {expected_number} to {number - 1}"
            )
            problems.append(f"checkpoints deleted: {gap} missing")
        if cp is None:
            problems.append(f"checkpoint {number}: malformed record (forged checkpoint)")
            expected_number, expected_prev = number + 1, None
            continue
        signed = cp.key_id == key_id and cp.signature_valid(key)
        if not signed:
            problems.append(
                f"checkpoint {cp.number} (seq {cp.seq}): signature does not verify with the terminal's public key "
                "(forged checkpoint)"
            )
        elif cp.number == expected_number and expected_prev is not None and cp.prev_digest != expected_prev:
            problems.append(f"checkpoint {cp.number}: does not follow checkpoint {cp.number - 1} (checkpoints altered)")
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
            if first_bad is None or cp.seq < first_bad:
                signed_through = max(signed_through, cp.seq)
        expected_number, expected_prev = cp.number + 1, (cp.digest if signed else None)

    return VerifyResult(not problems, len(rows), problems, valid, signed_through)
