"""The encrypted workspace: one folder, one SQLCipher database, encrypted index snapshots.

Layout of a workspace folder (mode 0700)::

    workspace.json   plaintext header: format version, workspace id, key derivation (salt and
                     scrypt cost, or "key-file"), key check value. Nothing biometric or personal.
    rfr.db           SQLCipher database (plus rfr.db-wal / rfr.db-shm while open)
    index/           encrypted usearch snapshots, see engine.library.snapshot

Database settings and why:
- The key is given raw (``PRAGMA key = "x'..'"``): it already came out of scrypt or a key file,
  so SQLCipher's own PBKDF2 would only add seconds. Each purpose gets its own HKDF subkey.
- Cipher settings are set explicitly (SQLCipher 4 values) so a future library default cannot
  make an existing workspace unreadable.
- ``journal_mode=WAL`` with ``synchronous=FULL``: every commit is durable once it returns and a
  crash (kill -9, power loss) rolls back to the last commit; the WAL is encrypted like the
  database. WAL rather than a rollback journal because a commit costs one fsync instead of
  several (enrolment commits per image) and readers (the UI) do not block the writer.
  After destroying data (``purge``), ``checkpoint()`` folds the WAL back and truncates it.
- ``secure_delete=ON``: deleted rows are overwritten, not left in free pages.
- ``temp_store=MEMORY``: sorts and temporary tables never go to (unencrypted) temp files.
- ``foreign_keys=ON`` so deleting a library cascades to its subjects, images and templates.

The audit log's head is signed at the end of every transaction that wrote events
(``transaction()`` calls ``engine.audit.seal`` just before COMMIT) with the terminal's audit
signing key, which is a separate file (``engine.audit.signing``), never in the database. A
workspace opened without that key can be read, but any transaction that would record an
event is refused and rolled back: nothing happens that cannot be recorded and signed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from engine.audit.signing import AuditSigningKey
from engine.errors import AuditError, WorkspaceError, WrongKeyError
from engine.files import fsync_dir, storage_problem
from engine.security.keys import KdfSpec, WorkspaceKey, obtain_key

HEADER_NAME = "workspace.json"
DB_NAME = "rfr.db"
INDEX_DIR = "index"
HEADER_FORMAT = "rfr-workspace"
FORMAT_VERSION = 1

_DB_KEY_LABEL = "rfr/sqlcipher/v1"
_CIPHER_SETTINGS = (
    "cipher_page_size = 4096",
    "kdf_iter = 256000",
    "cipher_hmac_algorithm = HMAC_SHA512",
    "cipher_kdf_algorithm = PBKDF2_HMAC_SHA512",
    "cipher_use_hmac = ON",
    "cipher_plaintext_header_size = 0",
)
_WRONG_KEY = "workspace key is wrong: check the passphrase or key file"
_EXPORT_PAYLOAD_TYPE = "application/vnd.in-toto+json"  # the only DSSE payload the audit key signs

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _current_time() -> datetime:
    return utc_now()  # looked up at call time, so tests can move the whole process's clock


@dataclass(frozen=True)
class WorkspaceHeader:
    """The plaintext header: what is needed to derive and check the key, and nothing else."""

    workspace_id: str
    kdf: KdfSpec
    key_check: str
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": HEADER_FORMAT,
            "format_version": self.format_version,
            "workspace_id": self.workspace_id,
            "kdf": self.kdf.to_json(),
            "key_check": self.key_check,
        }

    @classmethod
    def read(cls, directory: Path, *, made_by: str = "rfr workspace init") -> WorkspaceHeader:
        """The header of the workspace in ``directory``; ``made_by`` is the command the refusal names for making
        one (an oversight workspace is made by ``rfr oversight init``)."""
        path = directory / HEADER_NAME
        if not directory.is_dir():
            raise WorkspaceError(f"workspace {directory} does not exist: create it with '{made_by} {directory}'")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkspaceError(f"{directory} is not an rfr workspace (no {HEADER_NAME})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WorkspaceError(f"workspace header {path} is unreadable ({exc.__class__.__name__})") from None
        if not isinstance(data, dict) or data.get("format") != HEADER_FORMAT:
            raise WorkspaceError(f"{directory} is not an rfr workspace ({HEADER_NAME} is not an rfr header)")
        version = data.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise WorkspaceError(f"workspace header {path} has no valid format_version")
        if version > FORMAT_VERSION:
            raise WorkspaceError(f"workspace format v{version} is newer than this rfr (v{FORMAT_VERSION}): upgrade rfr")
        kdf = data.get("kdf")
        if not isinstance(kdf, dict) or not isinstance(data.get("key_check"), str):
            raise WorkspaceError(f"workspace header {path} is damaged: restore it from a backup")
        return cls(str(data.get("workspace_id", "")), KdfSpec.from_json(kdf), data["key_check"], version)


class Workspace:
    """An open workspace: the decrypted database connection and the key's subkeys.

    One connection, shared by threads under a lock; ``transaction()`` for writes,
    ``query()`` for reads. Close it (or use ``with``) to release the database.
    """

    def __init__(
        self,
        directory: Path,
        key: WorkspaceKey,
        header: WorkspaceHeader,
        conn: Any,
        clock: Clock | None = None,
        audit_key: AuditSigningKey | None = None,
    ) -> None:
        self.directory = directory
        self.header = header
        self._key = key
        self._conn = conn
        self._lock = threading.RLock()
        self._in_transaction = False
        self.clock: Clock = clock or _current_time
        self._closers: list[Callable[[], None]] = []
        self._audit_key = audit_key

    # ---- creating and opening -------------------------------------------------------------

    @classmethod
    def create(
        cls, directory: Path, key: WorkspaceKey, *, audit_key: AuditSigningKey, clock: Clock | None = None
    ) -> Self:
        """Create a new workspace at ``directory`` (absent, or an empty folder), its log started with ``audit_key``.

        Built in a hidden sibling folder and renamed into place, so a crash never leaves a
        half-made workspace under the requested name.
        """
        directory = Path(directory).absolute()
        check_can_create(directory)
        staging = directory.parent / f".{directory.name}.creating-{secrets.token_hex(4)}"
        staging.mkdir(mode=0o700)
        try:
            header = WorkspaceHeader(secrets.token_hex(16), key.kdf, key.check_value())
            (staging / INDEX_DIR).mkdir(mode=0o700)
            # SQLite gives the -wal and -shm files the database file's mode: make that owner-only.
            os.close(os.open(staging / DB_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = _connect(staging / DB_NAME, key)
            try:
                _migrate(conn)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO workspace_meta (key, value) VALUES ('workspace_id', ?), ('created_at', ?)",
                    (header.workspace_id, (clock or _current_time)().isoformat(timespec="seconds")),
                )
                _start_audit_log(conn, audit_key, header.workspace_id, clock or _current_time)
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            _write_atomic(staging / HEADER_NAME, json.dumps(header.to_json(), indent=2).encode() + b"\n")
            fsync_dir(staging)
            if directory.exists():
                directory.rmdir()  # empty, checked above; rename cannot replace it portably
            os.replace(staging, directory)
            fsync_dir(directory.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls.open(directory, key, clock=clock, audit_key=audit_key)

    @classmethod
    def open(
        cls,
        directory: Path,
        key: WorkspaceKey,
        *,
        clock: Clock | None = None,
        audit_key: AuditSigningKey | None = None,
    ) -> Self:
        """Open an existing workspace, apply pending migrations, and check the keys.

        A wrong key raises ``WrongKeyError`` before anything is written; an audit key file that
        does not belong to this workspace raises ``AuditError``. Without ``audit_key`` the
        workspace can be read but records nothing.
        """
        directory = Path(directory).absolute()
        header = WorkspaceHeader.read(directory)
        if not key.matches_check_value(header.key_check):
            raise WrongKeyError(_WRONG_KEY)
        db_path = directory / DB_NAME
        if not db_path.is_file():
            raise WorkspaceError(f"workspace {directory} has no database ({DB_NAME}): restore it from a backup")
        (directory / INDEX_DIR).mkdir(mode=0o700, exist_ok=True)
        conn = _connect(db_path, key)
        try:
            _migrate(conn)
            row = conn.execute("SELECT value FROM workspace_meta WHERE key = 'workspace_id'").fetchone()
            if row is None or row[0] != header.workspace_id:
                raise WorkspaceError(f"workspace header and database in {directory} do not belong together")
            if audit_key is not None:
                _check_audit_key(conn, audit_key)
        except BaseException:
            conn.close()
            raise
        return cls(directory, key, header, conn, clock, audit_key)

    @classmethod
    def unlock(
        cls,
        directory: Path,
        key_file: Path | None = None,
        *,
        clock: Clock | None = None,
        audit_key: AuditSigningKey | None = None,
    ) -> Self:
        """Open with the key from ``key_file`` or the passphrase (``RFR_PASSPHRASE`` or a prompt)."""
        header = WorkspaceHeader.read(Path(directory))
        return cls.open(Path(directory), obtain_key(header.kdf, key_file), clock=clock, audit_key=audit_key)

    # ---- using -------------------------------------------------------------------------------

    @property
    def index_dir(self) -> Path:
        return self.directory / INDEX_DIR

    def derive_key(self, label: str, *, salt: bytes | None = None, context: bytes = b"") -> bytes:
        """A subkey of the workspace key for one purpose (see ``WorkspaceKey.derive``)."""
        return self._key.derive(label, salt=salt, context=context)

    def now(self) -> datetime:
        return self.clock()

    @property
    def records(self) -> bool:
        """Whether this workspace can record (it holds the terminal's audit signing key)."""
        return self._audit_key is not None

    @property
    def audit_key_id(self) -> str | None:
        return None if self._audit_key is None else self._audit_key.key_id

    @property
    def audit_public_key(self) -> Any:
        """The public half of the terminal's audit signing key (None when opened without it)."""
        return None if self._audit_key is None else self._audit_key.public_key

    def sign_for_export(self, payload: bytes) -> tuple[str, bytes]:
        """Sign an audit bundle's in-toto Statement with the terminal's audit key: (key id, DSSE signature).

        What is signed is DSSE's pre-authentication encoding of the Statement (``DSSEv1 <len> <type>
        <len> <payload>``), never the caller's bytes as they are, so this can sign no signed head of
        the log (those are canonical JSON) and nothing but a DSSE envelope's payload.
        """
        if self._audit_key is None:
            raise AuditError("an audit bundle is signed with the terminal's audit key: open the terminal with it")
        kind = _EXPORT_PAYLOAD_TYPE.encode("ascii")
        pae = b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)
        return self._audit_key.key_id, self._audit_key.sign(pae)

    def rotate_audit_key(self, actor: str, new_key: AuditSigningKey, reason: str) -> int:
        """Hand the log's signing over to ``new_key`` (recorded and signed with the current key); its seq."""
        from engine.audit.log import rotate_key

        if self._audit_key is None:
            raise AuditError("the audit key cannot be rotated without the current audit signing key")
        with self.transaction() as conn:
            seq = rotate_key(conn, actor, self._audit_key, new_key, reason, self.clock)
        self._audit_key = new_key
        return seq

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception). Yields the connection.

        Just before COMMIT the audit log's head is signed if the transaction wrote events; a
        transaction whose events cannot be signed rolls back.
        """
        from engine.audit.checkpoints import seal

        with self._lock:
            if self._in_transaction:
                raise RuntimeError("nested workspace transaction")
            conn = self._require_open()
            conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                # Where the log ended as this transaction began: the signed head must already cover it.
                since = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0])
                yield conn
                seal(conn, self._audit_key, self.clock, since=since)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only statement and return all rows."""
        with self._lock:
            return list(self._require_open().execute(sql, params).fetchall())

    def query_one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row = self._require_open().execute(sql, params).fetchone()
            return None if row is None else tuple(row)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """The connection, held under the workspace lock for a series of reads that must agree."""
        with self._lock:
            yield self._require_open()

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor for streaming large reads; holds the workspace lock until closed."""
        with self._lock:
            cur = self._require_open().cursor()
            try:
                yield cur
            finally:
                cur.close()

    def schema_versions(self) -> dict[str, int]:
        rows = self.query("SELECT domain, MAX(version) FROM schema_migrations GROUP BY domain")
        return {str(d): int(v) for d, v in rows}

    def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it (after destroying data)."""
        with self._lock:
            self._require_open().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the workspace closes (to drop in-memory indexes)."""
        self._closers.append(callback)

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            for callback in reversed(self._closers):
                callback()
            self._closers.clear()
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"Workspace({str(self.directory)!r}, {state})"

    def _require_open(self) -> Any:
        if self._conn is None:
            raise WorkspaceError("the workspace is closed")
        return self._conn


def check_can_create(directory: Path) -> None:
    """Refuse to create a workspace over anything that exists and is not an empty folder."""
    if directory.exists():
        if not directory.is_dir():
            raise WorkspaceError(f"{directory} exists and is not a folder: choose a new path")
        if any(directory.iterdir()):
            raise WorkspaceError(f"{directory} is not empty: choose a new or empty folder")
    elif not directory.parent.is_dir():
        raise WorkspaceError(f"cannot create workspace {directory}: {directory.parent} does not exist")


def _connect(path: Path, key: WorkspaceKey) -> Any:
    from sqlcipher3 import dbapi2

    conn = dbapi2.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        # SQLCipher logs failed page decryption to stderr; a wrong key is reported by us, once.
        conn.execute("PRAGMA cipher_log_level = NONE")
        hex_key = key.derive(_DB_KEY_LABEL).hex()
        conn.execute(f"PRAGMA key = \"x'{hex_key}'\"")
        del hex_key
        for setting in _CIPHER_SETTINGS:
            conn.execute(f"PRAGMA {setting}")
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except dbapi2.DatabaseError as exc:
            full = storage_problem(exc, path)
            if full is not None:
                raise full from None
            raise WrongKeyError(_WRONG_KEY) from None
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of decrypted pages: search looks up random rows
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise WorkspaceError(f"workspace database {path} cannot use write-ahead logging here (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: Any) -> None:
    from engine.schema import migrate

    migrate(conn)


def _start_audit_log(conn: Any, audit_key: AuditSigningKey, workspace_id: str, clock: Clock) -> None:
    """The first event names the audit key; its public half is the one an auditor records at installation."""
    from engine.audit.log import start_log

    start_log(conn, audit_key, workspace_id, clock)


def _check_audit_key(conn: Any, audit_key: AuditSigningKey) -> None:
    from engine.audit.checkpoints import current_key

    stored = current_key(conn)
    if stored.key_id != audit_key.key_id:
        raise AuditError(
            f"the audit signing key file does not belong to this workspace (it records key {stored.key_id[:16]}, "
            f"the file holds {audit_key.key_id[:16]}): configure the terminal's own audit key file"
        )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
