"""``rfr audit export``: the log since the last export, as a signed bundle encrypted to the oversight, on media.

Each export covers the contiguous range from the event after the last export's range (seq 1 the
first time) to the last signed head, at most ``max_events`` events (more are left for the next
export, which the result says). The terminal records each export in its own log
(``audit.export``: the range, the head's hash, the bundle file's sha256, the oversight key), and
that record is where the next export starts, so the next bundle begins with it: the oversight
sees every export in the chain it checks. Order matters for what a crash leaves: the file is
written (new, fsynced, never over another file) before the export is recorded, so a power cut in
between leaves a bundle the terminal will export again in the next one (the oversight recognises
the overlap), never a range that no bundle holds. If the record cannot be written, the file is
removed: nothing leaves the terminal unrecorded.

The figures inside (``figures.json``) come from the caller (``engine.casework.monitoring``
through ``engine.terminal``), so this layer does not reach up into casework.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.audit._encoding import canonical_json
from engine.audit.bundle import (
    SUFFIX,
    TERMINAL_NAME,
    Bundle,
    BundleRefused,
    container,
    event_line,
    heads_file,
    load_oversight_public_key,
    oversight_key_id,
    read_bundle,
    seal,
    statement,
    verify_bundle,
    write_bundle_file,
)
from engine.audit.chain import append
from engine.audit.checkpoints import AuditKey, Checkpoint, key_rows, parse_checkpoint_row
from engine.audit.clock import format_utc
from engine.audit.signing import raw_public_bytes
from engine.errors import AuditError, ConfigError, StorageError
from engine.files import read_regular_file
from engine.version import software_version

if TYPE_CHECKING:
    from engine.security.users import Accounts, Session
    from engine.workspace import Workspace

EXPORT_ACTION = "audit.export"
DEFAULT_MAX_EVENTS = 50_000
MAX_OVERSIGHT_KEY_BYTES = 16 * 1024
_SPARE_BYTES = 1 << 20  # left free on the media beyond the bundle itself

FiguresFn = Callable[["Workspace", int, int], dict[str, Any]]
"""(workspace, first seq, last seq) -> the bundle's figures.json (``engine.casework.monitoring.bundle_figures``)."""


@dataclass(frozen=True)
class ExportPlan:
    """What the next export would cover."""

    first: int
    last: int
    events: int
    more_to_export: bool


@dataclass(frozen=True)
class ExportResult:
    """One bundle written and recorded."""

    path: Path
    first: int
    last: int
    events: int
    head_hash: str
    file_sha256: str
    statement_sha256: str
    bytes: int
    more_to_export: bool
    quarters: tuple[str, ...]
    recorded_seq: int

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["path"] = str(self.path)
        out["quarters"] = list(self.quarters)
        return out


class AuditExport:
    """Exports of one terminal's audit log to the oversight (auditors and engineers; each export recorded)."""

    def __init__(
        self,
        ws: Workspace,
        accounts: Accounts,
        *,
        terminal_name: str,
        oversight_key_file: Path | None,
        figures: FiguresFn,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        if max_events < 1:
            raise ValueError("an export covers at least one event")
        self._ws = ws
        self._accounts = accounts
        self._terminal = terminal_name
        self._key_file = oversight_key_file
        self._figures = figures
        self._max_events = max_events

    def _holder(self, session: Session, doing: str) -> str:
        from engine.security.users import Role  # the layer above: imported when used, never at import

        return self._accounts.require_any(session, doing, Role.AUDITOR, Role.ENGINEER).username

    def _oversight_key(self) -> Any:
        if self._key_file is None:
            raise ConfigError(
                "no oversight public key configured: set 'oversight_key_file' in the terminal configuration or "
                "RFR_OVERSIGHT_KEY_FILE to the public key file 'rfr oversight keys init' made"
            )
        data = read_regular_file(
            self._key_file, limit=MAX_OVERSIGHT_KEY_BYTES, what="oversight public key file", error=ConfigError
        )
        return load_oversight_public_key(data)

    def plan(self, session: Session) -> ExportPlan:
        """The range the next export would cover (for the auditor's screen); nothing is recorded."""
        self._holder(session, "planning an audit export")
        with self._ws.reading() as conn:
            first, last, more = _range(conn, self._max_events)
        return ExportPlan(first, last, last - first + 1, more)

    def export(self, session: Session, destination: Path) -> ExportResult:
        """Write the next bundle to ``destination`` (a folder on the media, or a new file's path) and record it."""
        actor = self._holder(session, "exporting the audit log")
        if not TERMINAL_NAME.fullmatch(self._terminal):
            raise ConfigError(
                f"the terminal's name {self._terminal!r} cannot name an audit bundle: set 'terminal' in the terminal "
                "configuration to 1-64 letters, digits, '.', '_' or '-'"
            )
        recipient = self._oversight_key()
        with self._ws.reading() as conn:
            first, last, more = _range(conn, self._max_events)
            target = _target(Path(destination), f"rfr-audit-{self._terminal}-seq{first:09d}-{last:09d}{SUFFIX}")
            events = [
                event_line(int(r[0]), *(str(v) for v in r[1:]))
                for r in conn.execute(
                    "SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit_events "
                    "WHERE seq >= ? AND seq <= ? ORDER BY seq",
                    (first, last),
                )
            ]
            heads = _heads(conn, max(first - 1, 1), last)
            keys = [(key.key_id, raw_public_bytes(key.public_key), key.introduced_seq) for key in _keys(conn)]
            ends = conn.execute("SELECT prev_hash FROM audit_events WHERE seq = ?", (first,)).fetchone()
            head = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (last,)).fetchone()
            workspace = conn.execute("SELECT value FROM workspace_meta WHERE key = 'workspace_id'").fetchone()
        figures = self._figures(self._ws, first, last)
        files = {
            "events.jsonl": b"".join(events),
            "figures.json": canonical_json(figures).encode("ascii"),
            "heads.json": heads_file(heads, keys),
        }
        predicate = {
            "terminal": self._terminal,
            "workspace_id": str(workspace[0]),
            "first_seq": first,
            "last_seq": last,
            "prev_hash": str(ends[0]),
            "head_hash": str(head[0]),
            "events": last - first + 1,
            "exported_at": format_utc(self._ws.now()),
            "exported_by": actor,
            "oversight_key_id": oversight_key_id(recipient),
            "software": software_version(),
            "more_to_export": more,
        }
        payload = statement(files, predicate)
        key_id, signature = self._ws.sign_for_export(payload)
        plaintext = container(payload, key_id, signature, files)
        _self_check(plaintext, self._ws, self._terminal)
        data = seal(plaintext, recipient)
        _check_space(target, len(data))
        write_bundle_file(target, data)
        file_sha256 = hashlib.sha256(data).hexdigest()
        statement_sha256 = hashlib.sha256(payload).hexdigest()
        try:
            with self._ws.transaction() as conn:
                again = _range(conn, self._max_events)[0]
                if again != first:
                    raise AuditError("another export ran at the same time: nothing was exported; export again")
                event = append(
                    conn,
                    actor,
                    EXPORT_ACTION,
                    details={
                        "first": first,
                        "last": last,
                        "events": last - first + 1,
                        "head_hash": predicate["head_hash"],
                        "file": target.name,
                        "file_sha256": file_sha256,
                        "statement_sha256": statement_sha256,
                        "oversight_key_id": predicate["oversight_key_id"],
                        "more_to_export": more,
                    },
                    clock=self._ws.clock,
                )
        except BaseException:
            target.unlink(missing_ok=True)  # nothing leaves the terminal unrecorded
            raise
        return ExportResult(
            target,
            first,
            last,
            last - first + 1,
            str(predicate["head_hash"]),
            file_sha256,
            statement_sha256,
            len(data),
            more,
            tuple(sorted(figures.get("by_quarter", {}))),
            event.seq,
        )


def last_export(conn: Any) -> tuple[int, dict[str, Any]] | None:
    """The seq and details of the terminal's last recorded export, or None."""
    row = conn.execute(
        "SELECT seq, details FROM audit_events WHERE action = ? ORDER BY seq DESC LIMIT 1", (EXPORT_ACTION,)
    ).fetchone()
    return None if row is None else (int(row[0]), json.loads(row[1]))


def _range(conn: Any, max_events: int) -> tuple[int, int, bool]:
    """(first, last, more to export): from after the last export to a signed head, bounded by ``max_events``."""
    previous = last_export(conn)
    first = 1 if previous is None else int(previous[1]["last"]) + 1
    end = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0])
    if end < first:
        raise AuditError("there is nothing to export: the log holds no event after the last export")
    window = min(end, first + max_events - 1)
    # The range ends at a signed head; never before the newest key's hand-over, so the bundle is
    # signed by a key the range itself introduces (or one the oversight already knows).
    newest = max((key.introduced_seq for key in _keys(conn)), default=0)
    floor = max(first, newest)
    row = conn.execute(
        "SELECT MAX(seq) FROM audit_checkpoints WHERE seq >= ? AND seq <= ?", (floor, max(window, floor))
    ).fetchone()
    last = row[0]
    if last is None:
        row = conn.execute("SELECT MIN(seq) FROM audit_checkpoints WHERE seq >= ?", (floor,)).fetchone()
        last = row[0]
    if last is None:
        raise AuditError(
            f"no signed head covers the log after seq {first - 1}: run 'rfr audit verify'; nothing was exported"
        )
    return first, int(last), int(last) < end


def _keys(conn: Any) -> list[AuditKey]:
    found = []
    for key_id, key in key_rows(conn):
        if key is None:
            raise AuditError(f"audit key {key_id[:16]} is malformed: run 'rfr audit verify'; nothing was exported")
        found.append(key)
    return found


def _heads(conn: Any, low: int, high: int) -> list[Checkpoint]:
    """The signed heads covering seq ``low`` to ``high``, in number order."""
    out = []
    for row in conn.execute(
        "SELECT number, seq, event_hash, at, key_id, prev_digest, signature FROM audit_checkpoints "
        "WHERE seq >= ? AND seq <= ? ORDER BY number",
        (low, high),
    ):
        head = parse_checkpoint_row(row)
        if head is None:
            raise AuditError(f"signed head {row[0]} is malformed: run 'rfr audit verify'; nothing was exported")
        out.append(head)
    return out


def _self_check(plaintext: bytes, ws: Workspace, terminal: str) -> Bundle:
    """Read the bundle back as the oversight will, trusting this log's own keys: a broken log is not exported."""
    with ws.reading() as conn:
        trusted = {key.key_id: key.public_key for key in _keys(conn)}
    try:
        bundle = read_bundle(plaintext, lambda _name: trusted)
        verify_bundle(bundle, trusted, terminal)
    except BundleRefused as exc:
        raise AuditError(
            f"the audit log fails verification where this export would cover it ({exc.diagnostics()}): nothing was "
            "exported; run 'rfr audit verify'"
        ) from None
    return bundle


def _target(destination: Path, name: str) -> Path:
    """A folder gets a new file ``name`` (the terminal and the range); a path must be a new file in a folder."""
    if destination.is_dir() and not destination.is_symlink():
        target = destination / name
        if target.exists() or target.is_symlink():
            raise AuditError(
                f"{target} already exists (this range was exported to this media before): use other media, or move "
                "that file to the oversight first; it is never overwritten"
            )
        return target
    if destination.exists() or destination.is_symlink():
        raise AuditError(f"{destination} already exists: an audit bundle is never written over another file")
    if not destination.parent.is_dir():
        raise AuditError(
            f"cannot export to {destination}: {destination.parent} is not a folder (is the media mounted?)"
        )
    return destination


def _check_space(target: Path, size: int) -> None:
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        return
    if free < size + _SPARE_BYTES:
        raise StorageError(
            f"the media at {target.parent} has {free:,} bytes free; the bundle needs {size:,}: use larger media; "
            "nothing was exported"
        )
