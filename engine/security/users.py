"""Users, roles, passwords and sessions at the terminal.

Passwords are hashed with scrypt (per-user random salt, cost parameters stored with the
hash, constant-time comparison). Repeated failed sign-ins lock the account for a time
the policy sets; an engineer can unlock it. Sessions end after the policy's idle timeout.
Approving a submission and signing off a peer review need a password entered just before
the action (``reauthenticate`` then ``require_reauthentication``), and each entry
authorises one such action.

Nobody acts as nobody: every change is made by a signed-in engineer, except the very first
engineer of a workspace with no users (``bootstrap_engineer``, audited). Account changes
that grant access (adding a user, changing roles, resetting a password) take two
engineers: one asks (``request_*``), a different one confirms within the policy's time
(``confirm``), and nobody asks for or confirms a change to their own account. So one
engineer can neither create an approver nor take over one by resetting their password. An
account whose password was set by someone else (a new account, a reset) must change it at
its next sign-in before doing anything else. The one exception to two engineers is adding
the second engineer to a terminal that has only one (otherwise nobody could ever confirm);
it is audited as such. Locking and unlocking take one engineer.

Every account change and sign-in outcome is written to the audit log. Each account
operation is its own workspace transaction: a failed sign-in must be counted even though
the call raises. Sessions live in memory, safe to use from several threads: the command
line signs in on every call, the application once per sitting.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from engine import audit
from engine.audit.clock import format_utc, parse_utc
from engine.audit.log import SYSTEM_ACTOR
from engine.errors import (
    AccountLocked,
    AuthenticationError,
    PasswordChangeRequired,
    PasswordRejected,
    PermissionRefused,
    ReauthenticationRequired,
    SessionExpired,
    UserError,
)
from engine.policy import Policy
from engine.schema import Migration

if TYPE_CHECKING:
    from engine.workspace import Workspace

MAX_PASSWORD_LENGTH = 1024
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
# Names the engine itself uses as audit actors; nobody may sign in as them.
RESERVED_USERNAMES = frozenset({"unknown", "system", "workspace-admin", "root", "admin", "oversight", "central"})


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
    must_change_password: bool = False

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
            "must_change_password": self.must_change_password,
            "created_at": format_utc(self.created_at),
            "password_changed_at": format_utc(self.password_changed_at),
        }


@dataclass(frozen=True)
class Session:
    """A handle on a signed-in session; its state is kept by the ``Accounts`` that issued it."""

    id: str = field(repr=False)
    username: str
    started_at: datetime


class RequestKind(StrEnum):
    """An account change that takes a second engineer to confirm."""

    ADD = "add"
    ROLES = "roles"
    RESET = "reset"


@dataclass(frozen=True)
class AccountRequest:
    """An account change asked for by one engineer, waiting for (or decided by) another."""

    id: int
    kind: RequestKind
    username: str
    roles: frozenset[Role] | None
    rank: str | None
    display_name: str | None
    requested_by: str
    requested_at: datetime
    state: str
    decided_by: str | None
    decided_at: datetime | None

    def describe(self) -> str:
        if self.kind is RequestKind.ADD:
            roles = ", ".join(sorted(r.label for r in self.roles or ()))
            return f"add {self.username} ({roles}; rank {self.rank or 'none'})"
        if self.kind is RequestKind.ROLES:
            roles = ", ".join(sorted(r.label for r in self.roles or ()))
            return f"set the roles of {self.username} to {roles} (rank {self.rank or 'none'})"
        return f"reset the password of {self.username}"

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.id,
            "kind": self.kind.value,
            "username": self.username,
            "roles": None if self.roles is None else sorted(r.value for r in self.roles),
            "rank": self.rank,
            "requested_by": self.requested_by,
            "requested_at": format_utc(self.requested_at),
            "state": self.state,
            "decided_by": self.decided_by,
            "decided_at": format_utc(self.decided_at) if self.decided_at else None,
            "summary": self.describe(),
        }


@dataclass(frozen=True)
class CentralAccount:
    """An account as a signed accounts package from the central unit states it (``engine.media``).

    ``first_password`` is the scrypt hash of the password the central unit handed its owner, who
    changes it at first sign-in; None keeps an existing account's password.
    """

    username: str
    display_name: str
    roles: tuple[str, ...]
    rank: str | None
    first_password: PasswordHash | None = field(repr=False)
    locked: bool


@dataclass(frozen=True)
class AccountChange:
    """What an accounts package does to one account: ``add``, ``change``, ``remove`` or ``none``, and how."""

    username: str
    change: str
    what: tuple[str, ...]

    def describe(self) -> str:
        verb = {"add": "added", "change": "changed", "remove": "removed", "none": "unchanged"}[self.change]
        return f"{self.username} {verb}" + (f": {'; '.join(self.what)}" if self.what else "")

    def to_json(self) -> dict[str, Any]:
        return {"username": self.username, "change": self.change, "what": list(self.what)}


@dataclass
class _SessionState:
    username: str
    last_activity: datetime
    password_at: datetime
    password_used: bool = False


_ROLE_CHECK = ", ".join(repr(r.value) for r in Role)

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
            role TEXT NOT NULL CHECK (role IN ({_ROLE_CHECK})),
            PRIMARY KEY (username, role)
        );
        """,
    ),
    Migration(
        2,
        "forced password change; account changes confirmed by a second engineer",
        """
        ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE user_requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('add', 'roles', 'reset')),
            username TEXT NOT NULL,
            roles TEXT,
            rank TEXT,
            display_name TEXT,
            password_n INTEGER,
            password_r INTEGER,
            password_p INTEGER,
            password_salt BLOB,
            password_hash BLOB,
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'cancelled', 'lapsed')),
            decided_by TEXT,
            decided_at TEXT
        );
        """,
    ),
]


_USER_COLUMNS = (
    "username, display_name, rank, password_changed_at, failed_attempts, locked_until, locked_by_admin, created_at, "
    "must_change_password"
)
_REQUEST_COLUMNS = (
    "id, kind, username, roles, rank, display_name, requested_by, requested_at, state, decided_by, decided_at"
)


class Accounts:
    """User accounts and sessions of one workspace, under a policy. Safe to use from several threads."""

    def __init__(self, ws: Workspace, policy: Policy, *, scrypt: ScryptParams = DEFAULT_SCRYPT) -> None:
        self._ws = ws
        self._policy = policy
        self._scrypt = scrypt
        self._sessions: dict[str, _SessionState] = {}
        self._sessions_lock = threading.RLock()
        # What an unknown username is checked against: random bytes with the terminal's cost, so a
        # sign-in as nobody runs exactly one scrypt, as a wrong password does.
        self._decoy = PasswordHash(
            scrypt.n, scrypt.r, scrypt.p, secrets.token_bytes(scrypt.salt_bytes), secrets.token_bytes(scrypt.dklen)
        )

    @property
    def policy(self) -> Policy:
        return self._policy

    def _now(self) -> datetime:
        return self._ws.now()

    # Plumbing

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One workspace transaction (it waits for another thread's to finish)."""
        with self._ws.transaction() as conn:
            yield conn

    def _audit(self, conn: Any, actor: str, action: str, user: str | None = None, **details: object) -> None:
        audit.append(
            conn, actor, action, subjects={"user": user} if user else None, details=details, clock=self._ws.clock
        )

    def _row(self, username: str) -> tuple[Any, ...] | None:
        query = f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?"  # noqa: S608 - constant column list
        return self._ws.query_one(query, (username,))

    def _user_from_row(self, row: tuple[Any, ...]) -> User:
        username, display_name, rank, changed, failed, locked_until, locked_by_admin, created, must_change = row
        roles = frozenset(
            Role(r) for (r,) in self._ws.query("SELECT role FROM user_roles WHERE username = ?", (username,))
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
            must_change_password=bool(must_change),
        )

    def _stored_hash(self, username: str) -> PasswordHash:
        row = self._ws.query_one(
            "SELECT password_n, password_r, password_p, password_salt, password_hash FROM users WHERE username = ?",
            (username,),
        )
        assert row is not None
        n, r, p, salt, digest = row
        return PasswordHash(int(n), int(r), int(p), bytes(salt), bytes(digest))

    def _store_hash(self, conn: Any, username: str, hashed: PasswordHash, *, must_change: bool) -> None:
        conn.execute(
            "UPDATE users SET password_n = ?, password_r = ?, password_p = ?, password_salt = ?, password_hash = ?, "
            "password_changed_at = ?, must_change_password = ? WHERE username = ?",
            (
                hashed.n,
                hashed.r,
                hashed.p,
                hashed.salt,
                hashed.digest,
                format_utc(self._now()),
                int(must_change),
                username,
            ),
        )

    def require_any(self, by: Session, doing: str, *roles: Role) -> User:
        """The session's user if they hold one of ``roles``; else ``PermissionRefused`` naming what ``doing`` needs."""
        user = self.check(by)
        if not any(user.has_role(role) for role in roles):
            needed = " or ".join(role.label for role in roles)
            lacks = "lacks it" if len(roles) == 1 else "holds neither" if len(roles) == 2 else "holds none of them"
            raise PermissionRefused(f"{doing} refused: it needs the {needed} role; {user.username} {lacks}")
        return user

    def _engineer(self, by: Session, doing: str) -> User:
        return self.require_any(by, doing, Role.ENGINEER)

    def _validate_rank(self, roles: frozenset[Role], rank: str | None, policy: Policy | None = None) -> None:
        policy = policy or self._policy
        if rank is not None and not policy.is_rank(rank):
            known = ", ".join(policy.rank_names())
            raise UserError(f"unknown rank {rank!r}: use one of {known}")
        if Role.APPROVER in roles:
            minimum = policy.approval.min_rank
            if rank is None or not policy.rank_at_least(rank, minimum):
                raise UserError(
                    f"role approver needs the rank of {minimum} or above (or staff equivalent); "
                    f"{'no rank was given' if rank is None else repr(rank) + ' is below it'}"
                )

    def _end_sessions_of(self, username: str) -> None:
        with self._sessions_lock:
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
        return [self._user_from_row(row) for row in self._ws.query(query)]

    def directory(self, by: Session) -> list[User]:
        """Every account, for an engineer or an auditor; the look is recorded."""
        user = self.require_any(by, "listing users", Role.ENGINEER, Role.AUDITOR)
        users = self.list_users()
        with self._write() as conn:
            self._audit(conn, user.username, "user.list", None, users=len(users))
        return users

    def has_users(self) -> bool:
        return self._ws.query_one("SELECT 1 FROM users LIMIT 1") is not None

    def engineers(self) -> list[str]:
        rows = self._ws.query(
            "SELECT username FROM user_roles WHERE role = ? ORDER BY username", (Role.ENGINEER.value,)
        )
        return [str(r[0]) for r in rows]

    # The first engineer

    def bootstrap_engineer(self, username: str, password: str, *, display_name: str = "") -> User:
        """The first user of a workspace with no users: an engineer, added by whoever installs the terminal."""
        validate_username(username)
        _check_display_name(display_name)
        check_password_rules(password, username, self._policy)
        hashed = hash_password(password, self._scrypt)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None:
                raise PermissionRefused(
                    "adding a user without a signed-in engineer is only possible on a terminal with no users: "
                    "sign in as an engineer (--as ENGINEER)"
                )
            self._insert_user(conn, username, display_name, None, hashed, frozenset({Role.ENGINEER}), must_change=False)
            self._audit(
                conn,
                SYSTEM_ACTOR,
                "user.bootstrap",
                username,
                roles=[Role.ENGINEER.value],
                note="first user, no engineer signed in",
            )
        return self.get_user(username)

    def _insert_user(
        self,
        conn: Any,
        username: str,
        display_name: str,
        rank: str | None,
        hashed: PasswordHash,
        roles: frozenset[Role],
        *,
        must_change: bool,
    ) -> None:
        if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise UserError(f"user {username!r} already exists")
        now = format_utc(self._now())
        conn.execute(
            "INSERT INTO users (username, display_name, rank, password_n, password_r, password_p, password_salt, "
            "password_hash, password_changed_at, created_at, must_change_password) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                username,
                display_name,
                rank,
                hashed.n,
                hashed.r,
                hashed.p,
                hashed.salt,
                hashed.digest,
                now,
                now,
                int(must_change),
            ),
        )
        conn.executemany(
            "INSERT INTO user_roles (username, role) VALUES (?, ?)", [(username, r.value) for r in sorted(roles)]
        )

    # Changes that take two engineers

    def adds_at_once(self, roles: Iterable[str | Role], *, by: Session) -> bool:
        """Whether adding ``roles`` by ``by`` takes effect at once: the second engineer of a terminal with one."""
        engineer = self._engineer(by, "adding a user")
        return self._alone(parse_roles(roles), engineer)

    def _alone(self, roles: frozenset[Role], engineer: User) -> bool:
        return roles == {Role.ENGINEER} and self.engineers() == [engineer.username]

    def request_add(
        self,
        username: str,
        roles: Iterable[str | Role],
        *,
        by: Session,
        rank: str | None = None,
        display_name: str = "",
        password: str | None = None,
    ) -> AccountRequest:
        """Ask for a new account; a second engineer confirms it and sets its first password (``confirm``).

        The engineer who asks never knows the password, so one engineer cannot make an account they
        can then use. The exception is a terminal's second engineer (``adds_at_once``): no one else
        could confirm, so it is added at once with ``password``, which that engineer changes at first use.
        """
        validate_username(username)
        _check_display_name(display_name)
        parsed = parse_roles(roles)
        self._validate_rank(parsed, rank)
        engineer = self._engineer(by, "adding a user")
        if self._row(username) is not None:
            raise UserError(f"user {username!r} already exists")
        asker_password = UserError(
            "the first password of a new account is set by the engineer who confirms it, not the one who "
            "asks: ask without a password"
        )
        hashed = None
        if password is not None:
            if not self._alone(parsed, engineer):  # refused before its rules are checked or it is hashed
                raise asker_password
            check_password_rules(password, username, self._policy)
            hashed = hash_password(password, self._scrypt)
        with self._write() as conn:
            # Decided again inside the transaction, so requests racing on several threads add one engineer alone.
            alone = self._alone(parsed, engineer)
            if alone and hashed is None:
                raise UserError(
                    f"{username} is this terminal's second engineer, added at once (nobody else could confirm): "
                    "give their first password (RFR_NEW_PASSWORD or the prompt)"
                )
            if not alone and hashed is not None:
                raise asker_password
            if alone:
                assert hashed is not None
                self._insert_user(conn, username, display_name, rank, hashed, parsed, must_change=True)
                self._audit(
                    conn,
                    engineer.username,
                    "user.add",
                    username,
                    roles=sorted(r.value for r in parsed),
                    rank=rank,
                    confirmed_by=None,
                    note="second engineer of a terminal with one engineer: no one else could confirm",
                )
            request_id = self._insert_request(
                conn,
                RequestKind.ADD,
                username,
                engineer.username,
                roles=parsed,
                rank=rank,
                display_name=display_name,
                state="confirmed" if alone else "pending",
            )
        return self.request(request_id)

    def request_roles(
        self, username: str, roles: Iterable[str | Role], *, by: Session, rank: str | None
    ) -> AccountRequest:
        """Ask to replace a user's roles and rank; it takes effect when a second engineer confirms."""
        parsed = parse_roles(roles)
        self._validate_rank(parsed, rank)
        engineer = self._engineer(by, "changing roles")
        self._not_own(engineer, username, "changing roles")
        self.get_user(username)
        with self._write() as conn:
            request_id = self._insert_request(
                conn, RequestKind.ROLES, username, engineer.username, roles=parsed, rank=rank
            )
        return self.request(request_id)

    def request_reset(self, username: str, *, by: Session) -> AccountRequest:
        """Ask to reset someone's forgotten password; a second engineer confirms it and sets a temporary one.

        The engineer who asks never knows the new password; its owner changes it at next sign-in.
        """
        engineer = self._engineer(by, "resetting a password")
        self._not_own(engineer, username, "resetting a password")
        self.get_user(username)
        with self._write() as conn:
            request_id = self._insert_request(conn, RequestKind.RESET, username, engineer.username)
        return self.request(request_id)

    @staticmethod
    def _not_own(engineer: User, username: str, doing: str) -> None:
        if engineer.username == username:
            raise PermissionRefused(
                f"{doing} refused: nobody changes their own account this way (change your own password with "
                "'rfr user passwd')"
            )

    def _insert_request(
        self,
        conn: Any,
        kind: RequestKind,
        username: str,
        requested_by: str,
        *,
        roles: frozenset[Role] | None = None,
        rank: str | None = None,
        display_name: str | None = None,
        hashed: PasswordHash | None = None,
        state: str = "pending",
    ) -> int:
        cur = conn.execute(
            "INSERT INTO user_requests (kind, username, roles, rank, display_name, password_n, password_r, "
            "password_p, password_salt, password_hash, requested_by, requested_at, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                kind.value,
                username,
                None if roles is None else ",".join(sorted(r.value for r in roles)),
                rank,
                display_name,
                None if hashed is None else hashed.n,
                None if hashed is None else hashed.r,
                None if hashed is None else hashed.p,
                None if hashed is None else hashed.salt,
                None if hashed is None else hashed.digest,
                requested_by,
                format_utc(self._now()),
                state,
            ),
        )
        request_id = int(cur.lastrowid)
        if state == "pending":  # a request that took effect at once is audited as the change itself
            self._audit(
                conn,
                requested_by,
                "user.request",
                username,
                request=request_id,
                kind=kind.value,
                roles=None if roles is None else sorted(r.value for r in roles),
                rank=rank,
            )
        return request_id

    def _request_from_row(self, row: tuple[Any, ...]) -> AccountRequest:
        rid, kind, username, roles, rank, display_name, by, at, state, decided_by, decided_at = row
        return AccountRequest(
            id=int(rid),
            kind=RequestKind(kind),
            username=str(username),
            roles=None if roles is None else frozenset(Role(r) for r in str(roles).split(",") if r),
            rank=rank,
            display_name=display_name,
            requested_by=str(by),
            requested_at=parse_utc(at),
            state=str(state),
            decided_by=decided_by,
            decided_at=parse_utc(decided_at) if decided_at else None,
        )

    def request(self, request_id: int) -> AccountRequest:
        row = self._ws.query_one(f"SELECT {_REQUEST_COLUMNS} FROM user_requests WHERE id = ?", (request_id,))  # noqa: S608
        if row is None:
            raise UserError(f"no account change request {request_id} on this terminal")
        return self._request_from_row(row)

    def pending_requests(self, by: Session) -> list[AccountRequest]:
        """Account changes waiting for a second engineer (lapsed ones are marked so first)."""
        self._engineer(by, "reading account change requests")
        self.lapse_requests()
        rows = self._ws.query(
            f"SELECT {_REQUEST_COLUMNS} FROM user_requests WHERE state = 'pending' ORDER BY id"  # noqa: S608
        )
        return [self._request_from_row(r) for r in rows]

    def lapse_requests(self) -> int:
        """Mark requests older than the policy allows as lapsed (audited, actor system); how many."""
        limit = self._now() - timedelta(hours=self._policy.accounts.request_valid_hours)
        stale = self._ws.query(
            "SELECT id, username FROM user_requests WHERE state = 'pending' AND requested_at < ?", (format_utc(limit),)
        )
        if not stale:
            return 0
        lapsed = 0  # another thread may have lapsed some of them since the query
        with self._write() as conn:
            for request_id, username in stale:
                cur = conn.execute(
                    "UPDATE user_requests SET state = 'lapsed', decided_at = ?, password_salt = NULL, "
                    "password_hash = NULL WHERE id = ? AND state = 'pending'",
                    (format_utc(self._now()), request_id),
                )
                if cur.rowcount:
                    lapsed += 1
                    self._audit(conn, SYSTEM_ACTOR, "user.request_lapsed", str(username), request=int(request_id))
        return lapsed

    def confirmable(self, request_id: int, *, by: Session) -> AccountRequest:
        """The pending request ``by`` may confirm, or the refusal ``confirm`` would give.

        Checked before a first password is asked for (or hashed), so nobody types one for a
        change that is not pending or that they may not confirm.
        """
        engineer = self._engineer(by, "confirming an account change")
        self.lapse_requests()
        request = self.request(request_id)
        self._may_confirm(request, engineer)
        return request

    def _may_confirm(self, request: AccountRequest, engineer: User) -> None:
        if request.state != "pending":
            raise UserError(f"account change request {request.id} is {request.state}, not pending: ask again")
        if engineer.username == request.requested_by:
            raise PermissionRefused(
                f"confirmation refused: {engineer.username} asked for this change; a second engineer must confirm it"
            )
        self._not_own(engineer, request.username, "confirming an account change")

    def confirm(self, request_id: int, *, by: Session, password: str | None = None) -> User:
        """A second engineer confirms a pending account change: it takes effect now.

        For a new account or a reset, ``password`` is the first (temporary) password, set by the
        confirming engineer and handed to its owner, who must change it at first sign-in.
        """
        engineer = self._engineer(by, "confirming an account change")
        self.lapse_requests()
        pending = self.request(request_id)
        self._may_confirm(pending, engineer)  # before a password is checked or hashed for it
        hashed = None
        if pending.kind in (RequestKind.ADD, RequestKind.RESET):
            if password is None:
                raise UserError(
                    f"confirming request {request_id} ({pending.describe()}) sets the first password: give it "
                    "(RFR_NEW_PASSWORD or the prompt), then hand it to its owner"
                )
            check_password_rules(password, pending.username, self._policy)
            hashed = hash_password(password, self._scrypt)
        elif password is not None:
            raise UserError(f"request {request_id} changes roles: it takes no password")
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {_REQUEST_COLUMNS} FROM user_requests WHERE id = ?",  # noqa: S608
                (request_id,),
            ).fetchone()
            if row is None:
                raise UserError(f"no account change request {request_id} on this terminal")
            request = self._request_from_row(tuple(row))
            self._may_confirm(request, engineer)  # again: another thread may have decided it meanwhile
            if request.kind is RequestKind.ADD:
                assert hashed is not None and request.roles is not None
                self._insert_user(
                    conn,
                    request.username,
                    request.display_name or "",
                    request.rank,
                    hashed,
                    request.roles,
                    must_change=True,
                )
                action = "user.add"
            else:
                if conn.execute("SELECT 1 FROM users WHERE username = ?", (request.username,)).fetchone() is None:
                    raise UserError(f"no user {request.username!r} on this terminal")
                if request.kind is RequestKind.ROLES:
                    assert request.roles is not None
                    conn.execute("UPDATE users SET rank = ? WHERE username = ?", (request.rank, request.username))
                    conn.execute("DELETE FROM user_roles WHERE username = ?", (request.username,))
                    conn.executemany(
                        "INSERT INTO user_roles (username, role) VALUES (?, ?)",
                        [(request.username, r.value) for r in sorted(request.roles)],
                    )
                    action = "user.roles_change"
                else:
                    assert hashed is not None
                    self._store_hash(conn, request.username, hashed, must_change=True)
                    conn.execute(
                        "UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE username = ?",
                        (request.username,),
                    )
                    action = "user.password_reset"
            conn.execute(
                "UPDATE user_requests SET state = 'confirmed', decided_by = ?, decided_at = ?, password_salt = NULL, "
                "password_hash = NULL WHERE id = ?",
                (engineer.username, format_utc(self._now()), request_id),
            )
            self._audit(
                conn,
                request.requested_by,
                action,
                request.username,
                request=request_id,
                confirmed_by=engineer.username,
                roles=None if request.roles is None else sorted(r.value for r in request.roles),
                rank=request.rank,
            )
        self._end_sessions_of(request.username)
        return self.get_user(request.username)

    def cancel(self, request_id: int, *, by: Session, reason: str) -> AccountRequest:
        """Refuse or withdraw a pending account change (any engineer); recorded with the reason."""
        engineer = self._engineer(by, "cancelling an account change")
        text = " ".join(reason.split())
        if not text:
            raise UserError("cancelling an account change needs a reason (--reason TEXT)")
        with self._write() as conn:
            request = self.request(request_id)
            if request.state != "pending":
                raise UserError(f"account change request {request_id} is {request.state}, not pending")
            conn.execute(
                "UPDATE user_requests SET state = 'cancelled', decided_by = ?, decided_at = ?, password_salt = NULL, "
                "password_hash = NULL WHERE id = ?",
                (engineer.username, format_utc(self._now()), request_id),
            )
            self._audit(
                conn, engineer.username, "user.request_cancelled", request.username, request=request_id, reason=text
            )
        return self.request(request_id)

    # Changes one engineer makes

    def lock_user(self, username: str, *, by: Session, reason: str) -> User:
        """Lock an account until an engineer unlocks it; its sessions end. The reason is recorded, so one is needed:
        an account locked for no stated reason leaves its owner, and whoever unlocks it, with nothing to go on."""
        engineer = self._engineer(by, "locking an account")
        text = " ".join(str(reason).split())
        if not text:
            raise UserError(f"locking {username}'s account needs a reason, which is recorded (--reason TEXT)")
        self.get_user(username)
        with self._write() as conn:
            conn.execute("UPDATE users SET locked_by_admin = 1 WHERE username = ?", (username,))
            self._audit(conn, engineer.username, "user.lock", username, reason=text)
        self._end_sessions_of(username)
        return self.get_user(username)

    def unlock_user(self, username: str, *, by: Session) -> User:
        """Clear a lock of either kind and the failed sign-in count."""
        engineer = self._engineer(by, "unlocking an account")
        self._not_own(engineer, username, "unlocking an account")
        self.get_user(username)
        with self._write() as conn:
            conn.execute(
                "UPDATE users SET locked_by_admin = 0, locked_until = NULL, failed_attempts = 0 WHERE username = ?",
                (username,),
            )
            self._audit(conn, engineer.username, "user.unlock", username)
        return self.get_user(username)

    # Accounts from the central unit

    def plan_central_accounts(
        self, accounts: Sequence[CentralAccount], remove: Sequence[str], *, by: Session, policy: Policy | None = None
    ) -> list[AccountChange]:
        """What an accounts package would change here, checked as applying it checks (nothing is written)."""
        self._engineer(by, "reading an accounts package")
        with self._ws.reading() as conn:
            return self._central_changes(conn, accounts, remove, policy or self._policy)

    def apply_central_accounts(
        self,
        conn: Any,
        accounts: Sequence[CentralAccount],
        remove: Sequence[str],
        *,
        package: str,
        by: Session,
        policy: Policy | None = None,
    ) -> list[AccountChange]:
        """Apply an accounts package inside the caller's transaction: each change is the package's, applied by ``by``.

        The package, signed by the central unit's accounts key, is the authority a second engineer
        is for changes made at the terminal; ``by`` is the engineer who applied it. New accounts and
        reset passwords must be changed at first sign-in. Refused (``UserError``) if it would leave
        the terminal with no engineer able to sign in. Sessions of changed accounts end.
        """
        engineer = self._engineer(by, "applying an accounts package").username
        policy = policy or self._policy
        changes = self._central_changes(conn, accounts, remove, policy)
        stated = {a.username: a for a in accounts}
        for change in changes:
            name = change.username
            if change.change == "none":
                continue
            if change.change == "remove":
                conn.execute("DELETE FROM user_roles WHERE username = ?", (name,))
                conn.execute("DELETE FROM users WHERE username = ?", (name,))
                conn.execute(
                    "UPDATE user_requests SET state = 'cancelled', decided_by = ?, decided_at = ?,"
                    " password_salt = NULL, password_hash = NULL WHERE username = ? AND state = 'pending'",
                    (engineer, format_utc(self._now()), name),
                )
            else:
                account = stated[name]
                roles = parse_roles(account.roles)
                if change.change == "add":
                    assert account.first_password is not None
                    self._insert_user(
                        conn, name, account.display_name, account.rank, account.first_password, roles, must_change=True
                    )
                else:
                    conn.execute(
                        "UPDATE users SET display_name = ?, rank = ? WHERE username = ?",
                        (account.display_name, account.rank, name),
                    )
                    conn.execute("DELETE FROM user_roles WHERE username = ?", (name,))
                    conn.executemany(
                        "INSERT INTO user_roles (username, role) VALUES (?, ?)",
                        [(name, r.value) for r in sorted(roles)],
                    )
                    if account.first_password is not None:
                        self._store_hash(conn, name, account.first_password, must_change=True)
                        conn.execute(
                            "UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE username = ?", (name,)
                        )
                conn.execute("UPDATE users SET locked_by_admin = ? WHERE username = ?", (int(account.locked), name))
            self._audit(
                conn,
                engineer,
                f"user.{change.change}",
                name,
                package=package,
                source="central unit package",
                changed=list(change.what),
            )
        able = conn.execute(
            "SELECT count(*) FROM users u JOIN user_roles r ON r.username = u.username"
            " WHERE r.role = ? AND u.locked_by_admin = 0",
            (Role.ENGINEER.value,),
        ).fetchone()[0]
        if not able:
            raise UserError(
                "the accounts package would leave this terminal with no engineer able to sign in: refused; "
                "ask the central unit to correct it"
            )
        for change in changes:
            if change.change != "none":
                self._end_sessions_of(change.username)
        return changes

    def _central_changes(
        self, conn: Any, accounts: Sequence[CentralAccount], remove: Sequence[str], policy: Policy
    ) -> list[AccountChange]:
        seen: set[str] = set()
        changes: list[AccountChange] = []
        for account in accounts:
            name = validate_username(account.username)
            if name in seen:
                raise UserError(f"the accounts package names {name!r} twice")
            seen.add(name)
            _check_display_name(account.display_name)
            roles = parse_roles(account.roles)
            self._validate_rank(roles, account.rank, policy)
            hashed = account.first_password
            if hashed is not None and (
                not _params_sane(hashed.n, hashed.r, hashed.p)
                or not 16 <= len(hashed.salt) <= 64
                or not 16 <= len(hashed.digest) <= 64
            ):
                raise UserError(f"the first password of {name!r} is not an scrypt hash this terminal accepts")
            row = conn.execute(
                "SELECT display_name, rank, locked_by_admin FROM users WHERE username = ?", (name,)
            ).fetchone()
            if row is None:
                if hashed is None:
                    raise UserError(f"the accounts package adds {name!r} without a first password: refused")
                what = [f"roles {', '.join(sorted(r.value for r in roles))}", f"rank {account.rank or 'none'}"]
                what += ["locked"] if account.locked else []
                changes.append(AccountChange(name, "add", (*what, "first password to change at first sign-in")))
                continue
            held = {str(r[0]) for r in conn.execute("SELECT role FROM user_roles WHERE username = ?", (name,))}
            what = []
            wanted = {r.value for r in roles}
            if held != wanted:
                what.append(f"roles {', '.join(sorted(held)) or 'none'} -> {', '.join(sorted(wanted))}")
            if row[1] != account.rank:
                what.append(f"rank {row[1] or 'none'} -> {account.rank or 'none'}")
            if str(row[0]) != account.display_name:
                what.append("display name")
            if bool(row[2]) != account.locked:
                what.append("locked" if account.locked else "unlocked")
            if hashed is not None:
                what.append("password reset (to change at first sign-in)")
            changes.append(AccountChange(name, "change" if what else "none", tuple(what)))
        for name in remove:
            if name in seen:
                raise UserError(f"the accounts package both keeps and removes {name!r}")
            seen.add(name)
            exists = conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone() is not None
            note: tuple[str, ...] = () if exists else ("not on this terminal",)
            changes.append(AccountChange(name, "remove" if exists else "none", note))
        return changes

    # Passwords and sign-in

    def _authenticate(self, username: str, password: str, purpose: str, success: str | None = None) -> User:
        """Check a password, counting failures and locking out; commits its bookkeeping, then raises or returns."""
        now = self._now()
        refusal: Exception | None = None
        row = self._row(username) if isinstance(username, str) else None
        if row is None:
            # As long as a wrong password takes (one scrypt), so timing does not reveal which usernames exist.
            verify_password(password, self._decoy)
        else:
            user = self._user_from_row(row)
            stored = self._stored_hash(user.username)
            right = verify_password(password, stored)
        with self._write() as conn:
            if row is None:
                self._audit(conn, "unknown", "user.sign_in_refused", None, reason="unknown username", purpose=purpose)
                refusal = AuthenticationError("wrong username or password")
            else:
                user = self._user_from_row(self._row(username) or row)
                refusal = self._check_password(conn, user, right, password, stored, purpose, now)
                if refusal is None and success is not None:
                    self._audit(conn, username, success, username, purpose=purpose)
        if refusal is not None:
            if isinstance(refusal, AccountLocked):
                self._end_sessions_of(username)
            raise refusal
        return self.get_user(username)

    def _check_password(
        self, conn: Any, user: User, right: bool, password: str, stored: PasswordHash, purpose: str, now: datetime
    ) -> Exception | None:
        name = user.username
        lockout = self._policy.lockout
        if user.locked_by_admin:
            self._audit(conn, name, "user.sign_in_refused", name, reason="locked by an engineer", purpose=purpose)
            return AccountLocked(f"account {name!r} is locked; ask an engineer to unlock it")
        if user.locked_until is not None and now < user.locked_until:
            self._audit(conn, name, "user.sign_in_refused", name, reason="locked out", purpose=purpose)
            return AccountLocked(
                f"account {name!r} is locked until {user.locked_until:%H:%M} UTC after repeated failed sign-ins; "
                "try again then, or ask an engineer to unlock it"
            )
        failures = 0 if user.locked_until is not None else user.failed_attempts  # an expired lockout starts afresh
        if not right:
            failures += 1
            if failures >= lockout.max_failed_attempts:
                until = now + timedelta(minutes=lockout.lock_minutes)
                conn.execute(
                    "UPDATE users SET failed_attempts = 0, locked_until = ? WHERE username = ?",
                    (format_utc(until), name),
                )
                self._audit(conn, name, "user.locked_out", name, failed_attempts=failures, until=format_utc(until))
                return AccountLocked(
                    f"wrong password: account {name!r} is now locked for {lockout.lock_minutes} minutes after "
                    f"{failures} failed attempts; ask an engineer to unlock it sooner"
                )
            conn.execute(
                "UPDATE users SET failed_attempts = ?, locked_until = NULL WHERE username = ?", (failures, name)
            )
            self._audit(conn, name, "user.sign_in_refused", name, reason="wrong password", purpose=purpose)
            return AuthenticationError("wrong username or password")
        conn.execute("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE username = ?", (name,))
        if (stored.n, stored.r, stored.p) != (self._scrypt.n, self._scrypt.r, self._scrypt.p):
            if self._scrypt.cost > stored.n * stored.r * stored.p:
                self._store_hash(
                    conn, name, hash_password(password, self._scrypt), must_change=user.must_change_password
                )
        return None

    def login(self, username: str, password: str) -> Session:
        """Sign in: a new session, which also counts as a fresh password entry for one sensitive action.

        An account whose password someone else set gets a session that can only change it
        (``check`` raises ``PasswordChangeRequired`` until ``change_password``).
        """
        self._authenticate(username, password, "sign_in", success="user.sign_in")
        now = self._now()
        session = Session(id=secrets.token_hex(16), username=username, started_at=now)
        with self._sessions_lock:
            self._sessions[session.id] = _SessionState(username=username, last_activity=now, password_at=now)
        return session

    def change_password(self, username: str, current: str, new: str) -> User:
        """Change one's own password: the current one must be right (a wrong one counts towards lockout)."""
        check_password_rules(new, username, self._policy)
        if new == current:
            raise PasswordRejected("the new password must differ from the current one")
        self._authenticate(username, current, "password_change")
        hashed = hash_password(new, self._scrypt)
        with self._write() as conn:
            self._store_hash(conn, username, hashed, must_change=False)
            self._audit(conn, username, "user.password_change", username)
        return self.get_user(username)

    # Sessions

    def check(self, session: Session, *, allow_password_change: bool = False) -> User:
        """The session's user, if the session is still live; records activity. Raises ``SessionExpired``.

        A session whose account must change its password first raises ``PasswordChangeRequired``
        (unless ``allow_password_change``, for the change itself).
        """
        now = self._now()
        idle = timedelta(minutes=self._policy.sessions.idle_timeout_minutes)
        with self._sessions_lock:
            state = self._sessions.get(session.id)
            if state is None or state.username != session.username:
                raise SessionExpired("you are not signed in: sign in again")
            if now - state.last_activity > idle:
                del self._sessions[session.id]
                raise SessionExpired(
                    f"signed out after {self._policy.sessions.idle_timeout_minutes} minutes without activity: "
                    "sign in again"
                )
        row = self._row(session.username)
        user = self._user_from_row(row) if row is not None else None
        if user is None or user.is_locked(now):
            self._end_sessions_of(session.username)
            raise SessionExpired("your account is locked, so the session has ended; ask an engineer")
        if user.must_change_password and not allow_password_change:
            raise PasswordChangeRequired(
                f"{user.username} must choose a new password before doing anything else (it was set by an engineer)"
            )
        with self._sessions_lock:
            state.last_activity = max(state.last_activity, now)
        return user

    def is_signed_in(self, session: Session) -> bool:
        with self._sessions_lock:
            return session.id in self._sessions

    def logout(self, session: Session) -> None:
        with self._sessions_lock:
            ended = self._sessions.pop(session.id, None)
        if ended is not None:
            with self._write() as conn:
                self._audit(conn, session.username, "user.sign_out", session.username)

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
        with self._sessions_lock:
            state = self._sessions[session.id]
            state.password_at = self._now()
            state.password_used = False

    def require_reauthentication(self, session: Session, purpose: ReauthPurpose) -> User:
        """Consume a recent password entry for one sensitive action, or raise ``ReauthenticationRequired``.

        Does not write: call it inside the transaction of the action it authorises.
        """
        user = self.check(session)
        purpose = ReauthPurpose(purpose)
        window = timedelta(seconds=self._policy.sessions.reauthentication_valid_seconds)
        with self._sessions_lock:
            state = self._sessions[session.id]
            if state.password_used or self._now() - state.password_at > window:
                verb = "approving" if purpose is ReauthPurpose.APPROVE else "signing off a peer review"
                raise ReauthenticationRequired(f"{verb} needs your password entered again just before it: re-enter it")
            state.password_used = True
        return user


def _check_display_name(display_name: str) -> None:
    if len(display_name) > 100 or not display_name.isprintable():
        raise UserError("display name: use at most 100 printable characters")
