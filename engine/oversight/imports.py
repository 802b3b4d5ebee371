"""Importing audit bundles: verify each, then place it against the terminal's accepted chain; nothing merged silently.

A bundle is first **verified** (``engine.audit.bundle``): it is encrypted to this oversight's key
and decrypts; it comes from a registered terminal; its DSSE envelope is signed by that terminal's
audit key; every file matches the signed Statement; every event's hash and link, and every
signed head, verify with the terminal's keys; and its figures agree with its own events
(``engine.casework.monitoring.event_totals``). Any failure refuses it: nothing is kept but the
refusal in this workspace's own audit log.

A verified bundle is then **placed** against the terminal's accepted head (seq ``s``, hash ``h``):

- it continues the head (its range starts at ``s + 1`` from ``h``): **accepted**; its events,
  figures and library composition are kept, keys it hands over to are trusted from now on, and
  quarantined bundles that now continue the head are accepted after it, in order;
- it starts after ``s + 1``: a **gap**; it is **quarantined** (kept, verified, not counted) until
  the missing bundle arrives;
- it holds only events already accepted, identical: a **replay**, harmless; nothing is kept;
- it starts where the last accepted bundle started and holds it all, identical, and more: it
  **supersedes** it (the terminal lost its record of the export in a power cut and exported the
  range again); any other identical overlap is kept as evidence of an **overlap**, not merged;
- it disagrees with an accepted event (or the event its range follows): the terminal's log has two
  histories. The first seq that differs is the divergence. At seq 1: the log was **rebuilt**. If
  the terminal wrote its differing event after it had exported the accepted one: the log was
  **rolled back** (taken back to before that event and written again). Otherwise both histories
  existed side by side: a **fork** (two different bundles over the same range, as from a cloned
  terminal). Each is kept as signed evidence and reported, and never merged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine import audit
from engine.audit.bundle import Bundle, BundleRefused, KeysOf, Verified, read_bundle, unseal, verify_bundle
from engine.audit.signing import raw_public_bytes
from engine.audit.store import GENESIS_HASH
from engine.casework.monitoring import BundleFigures, event_totals, totals_of
from engine.files import read_regular_file
from engine.oversight.service import Oversight
from engine.security.users import Session

REFUSED = "refused"
OUTCOMES = ("accepted", "quarantined", "replay", "fork", "rollback", "rebuilt", "overlap", REFUSED)
ATTENTION = frozenset({"fork", "rollback", "rebuilt", "overlap", REFUSED})
"""Outcomes an auditor must look at (the command exits non-zero)."""


@dataclass(frozen=True)
class ImportOutcome:
    """What became of one bundle."""

    source: str
    outcome: str
    message: str
    terminal: str | None = None
    first: int | None = None
    last: int | None = None
    bundle_id: int | None = None
    released: tuple[int, ...] = field(default_factory=tuple)
    """Quarantined bundles accepted because this one filled their gap, in order."""

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["released"] = list(self.released)
        return out


@dataclass(frozen=True)
class _Checked:
    bundle: Bundle
    figures: BundleFigures
    verified: Verified
    file_sha256: str


def read_bundle_file(path: Path) -> bytes:
    """A bundle file from the media: a regular file, bounded (``engine.files.read_regular_file``)."""
    from engine.audit.bundle import MAX_BUNDLE_BYTES

    return read_regular_file(path, limit=MAX_BUNDLE_BYTES, what="audit bundle", error=BundleRefused)


def import_bundle(
    ov: Oversight, session: Session, data: bytes, private_key: X25519PrivateKey, *, source: str
) -> ImportOutcome:
    """Verify one bundle and place it (see the module docstring); ``BundleRefused`` (recorded) when it fails."""
    user = ov.auditor(session, "importing audit bundles")
    source = "".join(c if c.isprintable() else "?" for c in source)[:200]  # a file name from hostile media
    file_sha256 = hashlib.sha256(data).hexdigest()
    try:
        checked = _check(ov, data, private_key, file_sha256)
    except BundleRefused as exc:
        ov.record(
            user.username,
            "oversight.import_refused",
            file=source,
            file_sha256=file_sha256,
            reason=exc.diagnostics(),
        )
        raise
    with ov.ws.transaction() as conn:
        placer = _Placer(ov, conn, user.username)
        outcome = placer.place(checked)
        released = placer.release(outcome.terminal) if outcome.outcome == "accepted" else []
        audit.append(
            conn,
            user.username,
            "oversight.import",
            subjects={
                "terminal": outcome.terminal or "",
                **({"bundle": outcome.bundle_id} if outcome.bundle_id else {}),
            },
            details={
                "file": source,
                "file_sha256": file_sha256,
                "first": outcome.first,
                "last": outcome.last,
                "outcome": outcome.outcome,
                "note": outcome.message,
                "released": released,
            },
            clock=ov.ws.clock,
        )
    return ImportOutcome(
        source,
        outcome.outcome,
        outcome.message,
        outcome.terminal,
        outcome.first,
        outcome.last,
        outcome.bundle_id,
        tuple(released),
    )


def _check(ov: Oversight, data: bytes, private_key: X25519PrivateKey, file_sha256: str) -> _Checked:
    return _verify(ov, unseal(data, private_key), file_sha256)


def _keys_of(ov: Oversight) -> KeysOf:
    def keys_of(terminal: str) -> dict[str, Any] | None:
        if ov.ws.query_one("SELECT 1 FROM oversight_terminals WHERE name = ?", (terminal,)) is None:
            return None
        return ov.trusted_keys(terminal)

    return keys_of


def _verify(ov: Oversight, plaintext: bytes, file_sha256: str) -> _Checked:
    return check_plaintext(plaintext, _keys_of(ov), file_sha256)


def check_plaintext(plaintext: bytes, keys_of: KeysOf, file_sha256: str = "") -> _Checked:
    """Everything checked of a decrypted bundle, with no workspace: bytes in, a verified bundle or ``BundleRefused``."""
    bundle = read_bundle(plaintext, keys_of)
    p = bundle.predicate
    verified = verify_bundle(bundle, keys_of(p.terminal) or {}, p.terminal)
    try:
        figures = BundleFigures.from_json(bundle.figures)
    except ValueError as exc:
        raise BundleRefused(f"the bundle's figures are malformed: {exc}") from None
    counted = event_totals((e.at, e.action, e.details) for e in bundle.events)
    if set(counted) != set(figures.by_quarter):
        raise BundleRefused(
            f"the bundle's figures cover quarters {sorted(figures.by_quarter)}, its events {sorted(counted)}"
        )
    for quarter, figures_of in figures.by_quarter.items():
        problems = figures_of.problems()
        if problems:
            raise BundleRefused(f"the bundle's figures for {quarter} disagree with one another: {problems[0]}")
        stated = totals_of(figures_of)
        for name, n in counted[quarter].items():
            if stated[name] != n:
                raise BundleRefused(
                    f"the bundle's figures for {quarter} disagree with its events: {name} {stated[name]}, "
                    f"but the events show {n}"
                )
    return _Checked(bundle, figures, verified, file_sha256)


@dataclass(frozen=True)
class _Placed:
    outcome: str
    message: str
    terminal: str
    first: int
    last: int
    bundle_id: int | None


def _head(conn: Any, terminal: str) -> tuple[int, str]:
    row = conn.execute(
        "SELECT seq, hash FROM oversight_events WHERE terminal = ? ORDER BY seq DESC LIMIT 1", (terminal,)
    ).fetchone()
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def _accepted_hash(conn: Any, terminal: str, seq: int) -> str | None:
    if seq == 0:
        return GENESIS_HASH
    row = conn.execute("SELECT hash FROM oversight_events WHERE terminal = ? AND seq = ?", (terminal, seq)).fetchone()
    return None if row is None else str(row[0])


def _holder(conn: Any, terminal: str, seq: int) -> tuple[int, int, str]:
    """(bundle id, its first seq, its export time) of the accepted bundle holding ``seq``."""
    row = conn.execute(
        "SELECT b.id, b.first_seq, b.exported_at FROM oversight_events e "
        "JOIN oversight_bundles b ON b.id = e.bundle_id WHERE e.terminal = ? AND e.seq = ?",
        (terminal, seq),
    ).fetchone()
    return int(row[0]), int(row[1]), str(row[2])


class _Placer:
    """Places verified bundles of one import inside one transaction, at one time, for one auditor."""

    def __init__(self, ov: Oversight, conn: Any, actor: str) -> None:
        self.ov = ov
        self.conn = conn
        self.actor = actor
        self.now = audit.format_utc(ov.ws.now())

    def place(self, checked: _Checked, stored: int | None = None) -> _Placed:
        """Decide and record what becomes of a verified bundle (``stored``: its row, when it was quarantined)."""
        conn = self.conn
        bundle = checked.bundle
        p = bundle.predicate
        terminal, first, last = p.terminal, p.first_seq, p.last_seq

        def placed(outcome: str, message: str, bundle_id: int | None) -> _Placed:
            return _Placed(outcome, message, terminal, first, last, bundle_id)

        if stored is None:
            same = conn.execute(
                "SELECT id, status FROM oversight_bundles WHERE terminal = ? AND statement_sha256 = ?",
                (terminal, bundle.statement_sha256),
            ).fetchone()
            if same is not None:
                return placed(
                    "replay", f"a replay of bundle {same[0]} ({same[1]}): already held; nothing changed", int(same[0])
                )
        known = conn.execute("SELECT workspace_id FROM oversight_terminals WHERE name = ?", (terminal,)).fetchone()
        if known[0] is not None and known[0] != p.workspace_id:
            message = (
                f"rebuilt: terminal {terminal} now sends the log of another workspace ({p.workspace_id[:16]}; the "
                f"accepted log is {str(known[0])[:16]}'s)"
            )
            return placed("rebuilt", message, self.keep(checked, "evidence", message, stored, "rebuilt", None))

        head_seq, _ = _head(conn, terminal)
        if first > head_seq + 1:
            message = f"gap: seq {head_seq + 1} to seq {first - 1} have not arrived; quarantined until they do"
            if stored is not None:
                return placed("quarantined", message, stored)
            return placed("quarantined", message, self.keep(checked, "quarantined", message, None, "gap", None))

        # Where does the bundle first disagree with what is accepted? (seq first - 1 is the event it follows.)
        divergence: int | None = None
        if _accepted_hash(conn, terminal, first - 1) != p.prev_hash:
            divergence = first - 1
        else:
            for event in bundle.events:
                if event.seq > head_seq:
                    break
                if _accepted_hash(conn, terminal, event.seq) != event.hash:
                    divergence = event.seq
                    break
        if divergence is not None:
            kind, message, other = self.diverged(checked, divergence)
            return placed(kind, message, self.keep(checked, "evidence", message, stored, kind, other))

        if first == head_seq + 1:
            bundle_id = self.accept(checked, stored)
            return placed("accepted", f"accepted: seq {first} to seq {last} continue the accepted log", bundle_id)
        if last <= head_seq:
            message = (
                f"a replay: seq {first} to seq {last} are already accepted, identical; nothing changed (exported "
                f"again at {p.exported_at}: the terminal had lost its record of that export, after a power cut or "
                "a restored backup)"
            )
            if stored is not None:
                _set_status(conn, stored, "superseded", message)
            return placed("replay", message, stored)
        latest = conn.execute(
            "SELECT id, first_seq FROM oversight_bundles WHERE terminal = ? AND status = 'accepted' "
            "ORDER BY last_seq DESC LIMIT 1",
            (terminal,),
        ).fetchone()
        if latest is not None and int(latest[1]) == first:
            note = (
                f"accepted: supersedes bundle {latest[0]}: the terminal exported seq {first} onwards again (it had "
                "lost its record of that export); identical where they overlap"
            )
            _set_status(conn, int(latest[0]), "superseded", f"superseded by a later export of seq {first} onwards")
            return placed("accepted", note, self.accept(checked, stored, note=note))
        message = (
            f"overlap: seq {first} to seq {head_seq} are already accepted (identical) but the bundle does not start "
            "where an accepted export did; kept as evidence, not merged"
        )
        return placed("overlap", message, self.keep(checked, "evidence", message, stored, "overlap", None))

    def diverged(self, checked: _Checked, seq: int) -> tuple[str, str, int | None]:
        """(kind, message, the accepted bundle it contradicts) for a bundle first differing at ``seq``."""
        bundle = checked.bundle
        if seq <= 1:
            return "rebuilt", "rebuilt: the log differs from the accepted one from seq 1: it was made anew", None
        other, other_first, exported = _holder(self.conn, bundle.predicate.terminal, seq)
        written = next((e.at for e in bundle.events if e.seq == seq), None)
        if written is None:  # the bundle follows a differing event: when the terminal signed its head at that event
            written = min(bundle.checkpoints, key=lambda cp: cp.number).at
        if written > exported:
            return (
                "rollback",
                f"rolled back: seq {seq} differs from accepted bundle {other}, and the terminal wrote it ({written}) "
                f"after it had exported the accepted one ({exported}): its log was taken back and written again",
                other,
            )
        same = "over the same range start" if other_first == bundle.predicate.first_seq else "overlapping it"
        return (
            "fork",
            f"fork: seq {seq} differs from accepted bundle {other} ({same}), both signed by the terminal: two "
            "histories of one log existed side by side (a cloned terminal or workspace)",
            other,
        )

    def keep(
        self, checked: _Checked, status: str, note: str, stored: int | None, finding: str, other: int | None
    ) -> int:
        """Store (or re-mark) the bundle whole, with a finding naming what is wrong."""
        bundle_id = stored if stored is not None else self.store(checked, status, note)
        if stored is not None:
            _set_status(self.conn, stored, status, note)
            self.resolve_gap(stored)
        self.conn.execute(
            "INSERT INTO oversight_findings (terminal, kind, bundle_id, other_bundle_id, detail, found_at, found_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (checked.bundle.predicate.terminal, finding, bundle_id, other, note, self.now, self.actor),
        )
        return bundle_id

    def store(self, checked: _Checked, status: str, note: str) -> int:
        p = checked.bundle.predicate
        cursor = self.conn.execute(
            "INSERT INTO oversight_bundles (terminal, statement_sha256, file_sha256, first_seq, last_seq, prev_hash, "
            "head_hash, exported_at, exported_by, status, note, contents, received_at, received_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.terminal,
                checked.bundle.statement_sha256,
                checked.file_sha256,
                p.first_seq,
                p.last_seq,
                p.prev_hash,
                p.head_hash,
                p.exported_at,
                p.exported_by,
                status,
                note,
                checked.bundle.container,
                self.now,
                self.actor,
            ),
        )
        return int(cursor.lastrowid)

    def resolve_gap(self, bundle_id: int) -> None:
        self.conn.execute(
            "UPDATE oversight_findings SET resolved_at = ? "
            "WHERE bundle_id = ? AND kind = 'gap' AND resolved_at IS NULL",
            (self.now, bundle_id),
        )

    def accept(self, checked: _Checked, stored: int | None, *, note: str = "") -> int:
        """Keep an accepted bundle's new events, its figures and composition, and the keys it hands over to."""
        conn = self.conn
        p = checked.bundle.predicate
        text = note or f"accepted: seq {p.first_seq} to seq {p.last_seq}"
        bundle_id = stored if stored is not None else self.store(checked, "accepted", text)
        conn.execute(
            "UPDATE oversight_bundles SET status = 'accepted', note = ?, accepted_at = ? WHERE id = ?",
            (text, self.now, bundle_id),
        )
        head_seq, _ = _head(conn, p.terminal)
        conn.execute(
            "UPDATE oversight_events SET bundle_id = ? WHERE terminal = ? AND seq >= ?",
            (bundle_id, p.terminal, p.first_seq),
        )
        conn.executemany(
            "INSERT INTO oversight_events (terminal, seq, at, actor, action, subjects, details, prev_hash, hash, "
            "bundle_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (p.terminal, e.seq, e.at, e.actor, e.action, e.subjects, e.details, e.prev_hash, e.hash, bundle_id)
                for e in checked.bundle.events
                if e.seq > head_seq
            ],
        )
        conn.executemany(
            "INSERT INTO oversight_figures (bundle_id, quarter, figures) VALUES (?, ?, ?)",
            [(bundle_id, q, json.dumps(f.to_json(), sort_keys=True)) for q, f in checked.figures.by_quarter.items()],
        )
        conn.execute(
            "INSERT INTO oversight_compositions (bundle_id, as_at, libraries) VALUES (?, ?, ?)",
            (bundle_id, checked.figures.as_at, json.dumps(checked.figures.libraries, sort_keys=True)),
        )
        for key in checked.verified.learned:
            conn.execute(
                "INSERT OR IGNORE INTO oversight_terminal_keys (terminal, key_id, public_key, source, introduced_seq, "
                "added_at) VALUES (?, ?, ?, 'rotation', ?, ?)",
                (p.terminal, key.key_id, raw_public_bytes(key.public_key), key.introduced_seq, self.now),
            )
        conn.execute(
            "UPDATE oversight_terminals SET workspace_id = COALESCE(workspace_id, ?) WHERE name = ?",
            (p.workspace_id, p.terminal),
        )
        self.resolve_gap(bundle_id)
        for alert in checked.verified.alerts:
            conn.execute(
                "INSERT INTO oversight_findings (terminal, kind, bundle_id, detail, found_at, found_by) "
                "VALUES (?, 'terminal_alert', ?, ?, ?, ?)",
                (p.terminal, bundle_id, alert, self.now, self.actor),
            )
        return bundle_id

    def release(self, terminal: str) -> list[int]:
        """Accept quarantined bundles that now continue the head, in order; re-place any that no longer fit."""
        released: list[int] = []
        while True:
            head_seq, _ = _head(self.conn, terminal)
            row = self.conn.execute(
                "SELECT id, contents, file_sha256 FROM oversight_bundles WHERE terminal = ? AND status = 'quarantined' "
                "AND first_seq <= ? ORDER BY first_seq, id LIMIT 1",
                (terminal, head_seq + 1),
            ).fetchone()
            if row is None:
                return released
            bundle_id = int(row[0])
            try:
                checked = _verify(self.ov, bytes(row[1]), str(row[2]))
            except BundleRefused as exc:
                _set_status(self.conn, bundle_id, "evidence", f"no longer verifies: {exc.diagnostics()}")
                self.resolve_gap(bundle_id)
                continue
            if self.place(checked, bundle_id).outcome == "accepted":
                released.append(bundle_id)
            self.resolve_gap(bundle_id)


def _set_status(conn: Any, bundle_id: int, status: str, note: str) -> None:
    conn.execute("UPDATE oversight_bundles SET status = ?, note = ? WHERE id = ?", (status, note, bundle_id))
