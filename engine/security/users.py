"""Users, roles, passwords and sessions at the terminal.

Passwords are hashed with scrypt (per-user random salt, cost parameters stored with the
hash, constant-time comparison). Repeated failed sign-ins lock the account for a time
the policy sets; an engineer (or the holder of the workspace key at the command line)
can unlock it. Sessions end after the policy's idle timeout. Approving a submission and
signing off a peer review need a password entered just before the action
(``reauthenticate`` then ``require_reauthentication``), and each entry authorises one
such action.

Every account change and sign-in outcome is written to the audit log. Each account
operation is its own transaction: a failed sign-in must be counted even though the call
raises, so these methods commit, and refuse to run while the caller has a transaction
open (committing it behind the caller's back would be worse). Sessions live in memory:
the command line signs in on every call, the TUI once per sitting.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from engine import audit
from engine.audit.clock import Clock, format_utc, parse_utc, utc_now
from engine.errors import (
    AccountLocked,
    AuthenticationError,
    PasswordRejected,
    PermissionRefused,
    ReauthenticationRequired,
    SessionExpired,
    UserError,
)
from engine.policy import Policy
from engine.schema import Migration, split_statements

MAX_PASSWORD_LENGTH = 1024
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
# Names the engine itself uses as audit actors; nobody may sign in as them.
RESERVED_USERNAMES = frozenset({"unknown", "system", "workspace-admin", "root", "admin"})


class Role(StrEnum):
    """What a person may do at the terminal. One person may hold several."""

    RFR_USER = "rfr_user"
    TASKING_OFFICER = "tasking_officer"
    APPROVER = "approver"
    PEER_REVIEWER = "peer_reviewer"
    ENGINEER = "engineer"
    AUDITOR = "auditor"

    @property
    def label(self) -> str:
        return _ROLE_LABELS[self]


_ROLE_LABELS = {
    Role.RFR_USER: "RFR User",
    Role.TASKING_OFFICER: "Tasking officer / SPOC",
    Role.APPROVER: "Approver",
    Role.PEER_REVIEWER: "Peer reviewer",
    Role.ENGINEER: "Engineer",
    Role.AUDITOR: "Auditor",
}


class ReauthPurpose(StrEnum):
    """Actions that need the password entered again just before them."""

    APPROVE = "approve"
    PEER_REVIEW_SIGN_OFF = "peer_review_sign_off"


# Password hashing


def _params_sane(n: int, r: int, p: int) -> bool:
    # Also guards against a tampered row asking for gigabytes of memory at sign-in.
    return 2**10 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost. The default (2**17, 8, 1: 128 MiB) is OWASP's minimum for scrypt; about 1 s here."""

    n: int = 2**17
    r: int = 8
    p: int = 1
    salt_bytes: int = 16
    dklen: int = 32

    def __post_init__(self) -> None:
        if not _params_sane(self.n, self.r, self.p):
            raise ValueError(f"scrypt parameters out of range: n={self.n} r={self.r} p={self.p}")

    @property
    def cost(self) -> int:
        return self.n * self.r * self.p


DEFAULT_SCRYPT = ScryptParams()


@dataclass(frozen=True)
class PasswordHash:
    """A stored scrypt hash with everything needed to check a password against it."""

    n: int
    r: int
    p: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)


def _normalise(password: str) -> bytes:
    # The same password typed on two keyboards can arrive composed or decomposed.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(_normalise(password), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * r * n + (1 << 20))


def hash_password(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> PasswordHash:
    salt = secrets.token_bytes(params.salt_bytes)
    digest = _scrypt(password, salt, params.n, params.r, params.p, params.dklen)
    return PasswordHash(params.n, params.r, params.p, salt, digest)


def verify_password(password: str, stored: PasswordHash) -> bool:
    """Constant-time check; a record with absurd parameters never verifies."""
    if not _params_sane(stored.n, stored.r, stored.p) or not stored.salt or not stored.digest:
        return False
    candidate = _scrypt(password, stored.salt, stored.n, stored.r, stored.p, len(stored.digest))
    return hmac.compare_digest(candidate, stored.digest)


# Validation


def validate_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise UserError(
            f"username {username!r} is not valid: use 2 to 32 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    if username in RESERVED_USERNAMES:
        raise UserError(f"username {username!r} is reserved for the system; choose another")
    return username


def check_password_rules(password: str, username: str, policy: Policy) -> None:
    """Raise ``PasswordRejected`` naming the rule a new password breaks."""
    minimum = policy.passwords.min_length
    if len(password) < minimum:
        raise PasswordRejected(f"password too short: use at least {minimum} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in password):
        raise PasswordRejected("password contains a control character (a stray newline?): type it again")
    if username.casefold() in password.casefold():
        raise PasswordRejected("password must not contain the username")


def parse_roles(roles: Iterable[str | Role]) -> frozenset[Role]:
    parsed: set[Role] = set()
    for role in roles:
        try:
            parsed.add(Role(role))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise UserError(f"unknown role {role!r}: use one of {known}") from None
    if not parsed:
        raise UserError("a user needs at least one role")
    return frozenset(parsed)


# Records


@dataclass(frozen=True)
class User:
    """An account as stored (never the password hash)."""

    username: str
    display_name: str
    roles: frozenset[Role]
    rank: str | None
    created_at: datetime
    password_changed_at: datetime
    failed_attempts: int
    locked_until: datetime | None
    locked_by_admin: bool

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def is_locked(self, now: datetime) -> bool:
        return self.locked_by_admin or (self.locked_until is not None and now < self.locked_until)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "roles": sorted(r.value for r in self.roles),
            "rank": self.rank,
            "locked": self.is_locked(now),
            "locked_until": format_utc(self.locked_until) if self.locked_until and not self.locked_by_admin else None,
            "locked_by_engineer": self.locked_by_admin,
            "failed_attempts": self.failed_attempts,
            "created_at": format_utc(self.created_at),
            "password_changed_at": format_utc(self.password_changed_at),
        }


@dataclass(frozen=True)
class Session:
    """A handle on a signed-in session; its state is kept by the ``Accounts`` that issued it."""

    id: str = field(repr=False)
    username: str
    started_at: datetime


@dataclass(frozen=True)
class WorkspaceAdmin:
    """The person holding the workspace key at the command line, managing users with no engineer signed in."""

    name: str = "workspace-admin"


WORKSPACE_ADMIN = WorkspaceAdmin()


@dataclass
class _SessionState:
    username: str
    last_activity: datetime
    password_at: datetime
    password_used: bool = False


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "users and roles",
        f"""
        CREATE TABLE users (
            username TEXT PRIMARY KEY,
            display_name TEXT NOT NULL DEFAULT '',
            rank TEXT,
            password_n INTEGER NOT NULL,
            password_r INTEGER NOT NULL,
            password_p INTEGER NOT NULL,
            password_salt BLOB NOT NULL,
            password_hash BLOB NOT NULL,
            password_changed_at TEXT NOT NULL,
            failed_attempts INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            locked_by_admin INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE user_roles (
            username TEXT NOT NULL REFERENCES users (username),
            role TEXT NOT NULL CHECK (role IN ({", ".join(repr(r.value) for r in Role)})),
            PRIMARY KEY (username, role)
        );
        """,
    ),
]


def create_schema(conn: Any) -> None:
    """Create the user tables on a fresh connection (tests; the workspace runs ``MIGRATIONS`` itself)."""
    for migration in MIGRATIONS:
        assert isinstance(migration.apply, str)
        for statement in split_statements(migration.apply):
            conn.execute(statement)
    if conn.in_transaction:
        conn.execute("COMMIT")


_USER_COLUMNS = (
    "username, display_name, rank, password_changed_at, failed_attempts, locked_until, locked_by_admin, created_at"
)


class Accounts:
    """User accounts and sessions over a workspace connection, under a policy and a clock."""

    def __init__(
        self,
        conn: Any,
        policy: Policy,
        *,
        clock: Clock = utc_now,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
        transaction: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        """``transaction``: the workspace's own ``BEGIN IMMEDIATE``..``COMMIT`` (with its lock), if it has one."""
        self._conn = conn
        self._transaction = transaction
        self._policy = policy
        self._clock = clock
        self._scrypt = scrypt
        self._sessions: dict[str, _SessionState] = {}
        self._decoy: PasswordHash | None = None

    # Plumbing

    @contextmanager
    def _write(self) -> Iterator[None]:
        if self._conn.in_transaction:
            raise RuntimeError("account changes commit on their own: finish the open transaction first")
        if self._transaction is not None:
            with self._transaction():
                yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _audit(self, actor: str, action: str, user: str | None = None, **details: object) -> None:
        audit.append(
            self._conn,
            actor,
            action,
            subjects={"user": user} if user else None,
            details=details,
            clock=self._clock,
            checkpoint_every=self._policy.audit.checkpoint_every_events,
        )

    def _row(self, username: str) -> Any:
        query = f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?"  # noqa: S608 - constant column list
        return self._conn.execute(query, (username,)).fetchone()

    def _user_from_row(self, row: Any) -> User:
        username, display_name, rank, changed, failed, locked_until, locked_by_admin, created = row
        roles = frozenset(
            Role(r) for (r,) in self._conn.execute("SELECT role FROM user_roles WHERE username = ?", (username,))
        )
        return User(
            username=str(username),
            display_name=str(display_name),
            roles=roles,
            rank=rank,
            created_at=parse_utc(created),
            password_changed_at=parse_utc(changed),
            failed_attempts=int(failed),
            locked_until=parse_utc(locked_until) if locked_until else None,
            locked_by_admin=bool(locked_by_admin),
        )

    def _stored_hash(self, username: str) -> PasswordHash:
        n, r, p, salt, digest = self._conn.execute(
            "SELECT password_n, password_r, password_p, password_salt, password_hash FROM users WHERE username = ?",
            (username,),
        ).fetchone()
        return PasswordHash(int(n), int(r), int(p), bytes(salt), bytes(digest))

    def _store_hash(self, username: str, hashed: PasswordHash, changed: bool) -> None:
        self._conn.execute(
            "UPDATE users SET password_n = ?, password_r = ?, password_p = ?, password_salt = ?, password_hash = ? "
            "WHERE username = ?",
            (hashed.n, hashed.r, hashed.p, hashed.salt, hashed.digest, username),
        )
        if changed:
            self._conn.execute(
                "UPDATE users SET password_changed_at = ? WHERE username = ?", (format_utc(self._clock()), username)
            )

    def _admin_name(self, by: Session | WorkspaceAdmin) -> str:
        if isinstance(by, WorkspaceAdmin):
            return by.name
        user = self.check(by)
        if not user.has_role(Role.ENGINEER):
            raise PermissionRefused(f"managing users needs the {Role.ENGINEER.label} role; {user.username} lacks it")
        return user.username

    def _validate_rank(self, roles: frozenset[Role], rank: str | None) -> None:
        if rank is not None and not self._policy.is_rank(rank):
            known = ", ".join(self._policy.rank_names())
            raise UserError(f"unknown rank {rank!r}: use one of {known}")
        if Role.APPROVER in roles:
            minimum = self._policy.approval.min_rank
            if rank is None or not self._policy.rank_at_least(rank, minimum):
                raise UserError(
                    f"role approver needs the rank of {minimum} or above (or staff equivalent); "
                    f"{'no rank was given' if rank is None else repr(rank) + ' is below it'}"
                )

    def _end_sessions_of(self, username: str) -> None:
        for sid in [sid for sid, state in self._sessions.items() if state.username == username]:
            del self._sessions[sid]

    # Reading

    def get_user(self, username: str) -> User:
        row = self._row(username)
        if row is None:
            raise UserError(f"no user {username!r} on this terminal")
        return self._user_from_row(row)

    def list_users(self) -> list[User]:
        query = f"SELECT {_USER_COLUMNS} FROM users ORDER BY username"  # noqa: S608 - constant column list
        rows = self._conn.execute(query).fetchall()
        return [self._user_from_row(row) for row in rows]

    # Administration (an engineer, or the workspace key holder)

    def add_user(
        self,
        username: str,
        password: str,
        roles: Iterable[str | Role],
        *,
        by: Session | WorkspaceAdmin,
        rank: str | None = None,
        display_name: str = "",
    ) -> User:
        validate_username(username)
        if len(display_name) > 100 or not display_name.isprintable():
            raise UserError("display name: use at most 100 printable characters")
        parsed = parse_roles(roles)
        self._validate_rank(parsed, rank)
        check_password_rules(password, username, self._policy)
        actor = self._admin_name(by)
        hashed = hash_password(password, self._scrypt)
        now = format_utc(self._clock())
        with self._write():
            if self._row(username) is not None:
                raise UserError(f"user {username!r} already exists")
            self._conn.execute(
                "INSERT INTO users (username, display_name, rank, password_n, password_r, password_p, password_salt, "
                "password_hash, password_changed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (username, display_name, rank, hashed.n, hashed.r, hashed.p, hashed.salt, hashed.digest, now, now),
            )
            self._conn.executemany(
                "INSERT INTO user_roles (username, role) VALUES (?, ?)", [(username, r.value) for r in sorted(parsed)]
            )
            self._audit(actor, "user.add", username, roles=sorted(r.value for r in parsed), rank=rank)
        return self.get_user(username)

    def set_roles(
        self, username: str, roles: Iterable[str | Role], *, by: Session | WorkspaceAdmin, rank: str | None
    ) -> User:
        """Replace a user's roles and rank."""
        parsed = parse_roles(roles)
        self._validate_rank(parsed, rank)
        actor = self._admin_name(by)
        with self._write():
            self.get_user(username)
            self._conn.execute("UPDATE users SET rank = ? WHERE username = ?", (rank, username))
            self._conn.execute("DELETE FROM user_roles WHERE username = ?", (username,))
            self._conn.executemany(
                "INSERT INTO user_roles (username, role) VALUES (?, ?)", [(username, r.value) for r in sorted(parsed)]
            )
            self._audit(actor, "user.roles_change", username, roles=sorted(r.value for r in parsed), rank=rank)
        return self.get_user(username)

    def lock_user(self, username: str, *, by: Session | WorkspaceAdmin, reason: str = "") -> User:
        """Lock an account until an engineer unlocks it; its sessions end."""
        actor = self._admin_name(by)
        with self._write():
            self.get_user(username)
            self._conn.execute("UPDATE users SET locked_by_admin = 1 WHERE username = ?", (username,))
            self._audit(actor, "user.lock", username, reason=reason)
        self._end_sessions_of(username)
        return self.get_user(username)

    def unlock_user(self, username: str, *, by: Session | WorkspaceAdmin) -> User:
        """Clear a lock of either kind and the failed sign-in count."""
        actor = self._admin_name(by)
        with self._write():
            self.get_user(username)
            self._conn.execute(
                "UPDATE users SET locked_by_admin = 0, locked_until = NULL, failed_attempts = 0 WHERE username = ?",
                (username,),
            )
            self._audit(actor, "user.unlock", username)
        return self.get_user(username)

    def reset_password(self, username: str, new_password: str, *, by: Session | WorkspaceAdmin) -> User:
        """Set a new password for someone who forgot theirs."""
        check_password_rules(new_password, username, self._policy)
        actor = self._admin_name(by)
        hashed = hash_password(new_password, self._scrypt)
        with self._write():
            self.get_user(username)
            self._store_hash(username, hashed, changed=True)
            self._audit(actor, "user.password_reset", username)
        return self.get_user(username)

    # Passwords and sign-in

    def _authenticate(self, username: str, password: str, purpose: str, success: str | None = None) -> User:
        """Check a password, counting failures and locking out; commits its bookkeeping, then raises or returns."""
        now = self._clock()
        refusal: Exception | None = None
        with self._write():
            row = self._row(username) if isinstance(username, str) else None
            if row is None:
                # Spend as long as a wrong password would, so timing does not reveal which usernames exist.
                if self._decoy is None:
                    self._decoy = hash_password(secrets.token_urlsafe(16), self._scrypt)
                verify_password(password, self._decoy)
                self._audit("unknown", "user.sign_in_refused", None, reason="unknown username", purpose=purpose)
                refusal = AuthenticationError("wrong username or password")
            else:
                user = self._user_from_row(row)
                refusal = self._check_password(user, password, purpose, now)
                if refusal is None and success is not None:
                    self._audit(username, success, username, purpose=purpose)
        if refusal is not None:
            if isinstance(refusal, AccountLocked):
                self._end_sessions_of(username)
            raise refusal
        return self.get_user(username)

    def _check_password(self, user: User, password: str, purpose: str, now: datetime) -> Exception | None:
        name = user.username
        lockout = self._policy.lockout
        if user.locked_by_admin:
            self._audit(name, "user.sign_in_refused", name, reason="locked by an engineer", purpose=purpose)
            return AccountLocked(f"account {name!r} is locked; ask an engineer to unlock it")
        if user.locked_until is not None and now < user.locked_until:
            self._audit(name, "user.sign_in_refused", name, reason="locked out", purpose=purpose)
            return AccountLocked(
                f"account {name!r} is locked until {user.locked_until:%H:%M} UTC after repeated failed sign-ins; "
                "try again then, or ask an engineer to unlock it"
            )
        failures = 0 if user.locked_until is not None else user.failed_attempts  # an expired lockout starts afresh
        stored = self._stored_hash(name)
        if not verify_password(password, stored):
            failures += 1
            if failures >= lockout.max_failed_attempts:
                until = now + timedelta(minutes=lockout.lock_minutes)
                self._conn.execute(
                    "UPDATE users SET failed_attempts = 0, locked_until = ? WHERE username = ?",
                    (format_utc(until), name),
                )
                self._audit(name, "user.locked_out", name, failed_attempts=failures, until=format_utc(until))
                return AccountLocked(
                    f"wrong password: account {name!r} is now locked for {lockout.lock_minutes} minutes after "
                    f"{failures} failed attempts; ask an engineer to unlock it sooner"
                )
            self._conn.execute(
                "UPDATE users SET failed_attempts = ?, locked_until = NULL WHERE username = ?", (failures, name)
            )
            self._audit(name, "user.sign_in_refused", name, reason="wrong password", purpose=purpose)
            return AuthenticationError("wrong username or password")
        self._conn.execute("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE username = ?", (name,))
        if (stored.n, stored.r, stored.p) != (self._scrypt.n, self._scrypt.r, self._scrypt.p):
            if self._scrypt.cost > stored.n * stored.r * stored.p:
                self._store_hash(name, hash_password(password, self._scrypt), changed=False)
        return None

    def login(self, username: str, password: str) -> Session:
        """Sign in: a new session, which also counts as a fresh password entry for one sensitive action."""
        self._authenticate(username, password, "sign_in", success="user.sign_in")
        now = self._clock()
        session = Session(id=secrets.token_hex(16), username=username, started_at=now)
        self._sessions[session.id] = _SessionState(username=username, last_activity=now, password_at=now)
        return session

    def change_password(self, username: str, current: str, new: str) -> User:
        """Change one's own password: the current one must be right (a wrong one counts towards lockout)."""
        check_password_rules(new, username, self._policy)
        if new == current:
            raise PasswordRejected("the new password must differ from the current one")
        self._authenticate(username, current, "password_change")
        hashed = hash_password(new, self._scrypt)
        with self._write():
            self._store_hash(username, hashed, changed=True)
            self._audit(username, "user.password_change", username)
        return self.get_user(username)

    # Sessions

    def check(self, session: Session) -> User:
        """The session's user, if the session is still live; records activity. Raises ``SessionExpired``."""
        state = self._sessions.get(session.id)
        if state is None or state.username != session.username:
            raise SessionExpired("you are not signed in: sign in again")
        now = self._clock()
        idle = timedelta(minutes=self._policy.sessions.idle_timeout_minutes)
        if now - state.last_activity > idle:
            del self._sessions[session.id]
            raise SessionExpired(
                f"signed out after {self._policy.sessions.idle_timeout_minutes} minutes without activity: sign in again"
            )
        row = self._row(session.username)
        user = self._user_from_row(row) if row is not None else None
        if user is None or user.is_locked(now):
            del self._sessions[session.id]
            raise SessionExpired("your account is locked, so the session has ended; ask an engineer")
        state.last_activity = max(state.last_activity, now)
        return user

    def logout(self, session: Session) -> None:
        if self._sessions.pop(session.id, None) is not None:
            with self._write():
                self._audit(session.username, "user.sign_out", session.username)

    def require_role(self, session: Session, role: Role) -> User:
        user = self.check(session)
        if not user.has_role(role):
            raise PermissionRefused(f"this needs the {role.label} role; {user.username} does not hold it")
        return user

    def reauthenticate(self, session: Session, password: str, purpose: ReauthPurpose) -> None:
        """Enter the password again before approving or signing off; a wrong one counts towards lockout."""
        self.check(session)
        purpose = ReauthPurpose(purpose)
        self._authenticate(session.username, password, purpose.value, success="user.reauthenticate")
        state = self._sessions[session.id]
        state.password_at = self._clock()
        state.password_used = False

    def require_reauthentication(self, session: Session, purpose: ReauthPurpose) -> User:
        """Consume a recent password entry for one sensitive action, or raise ``ReauthenticationRequired``.

        Does not write: call it inside the transaction of the action it authorises.
        """
        user = self.check(session)
        purpose = ReauthPurpose(purpose)
        state = self._sessions[session.id]
        window = timedelta(seconds=self._policy.sessions.reauthentication_valid_seconds)
        if state.password_used or self._clock() - state.password_at > window:
            verb = "approving" if purpose is ReauthPurpose.APPROVE else "signing off a peer review"
            raise ReauthenticationRequired(f"{verb} needs your password entered again just before it: re-enter it")
        state.password_used = True
        return user
