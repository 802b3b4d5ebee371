"""Users and sessions: scrypt hashing, password rules, lockout, idle timeout, password change,
re-authentication, two-engineer account changes; and the account findings of issue 14.

Every test runs on a real encrypted workspace (``tests.terminals.new_workspace``) with the cheap
scrypt cost ``FAST``: the stored cost is honoured, so nothing here needs the terminal's second a
hash. The findings of issue 14, each reproduced against the code it replaced (what that code did
is said beside each test):

- an engineer could reset an approver's password and approve as them (``test_a_reset_*``,
  ``test_*_own_*``, ``test_*_approver_role_*``, ``test_a_lapsed_*``); and once resets took two
  engineers, the one who asked still chose the password, so could sign in as the approver as soon
  as anyone confirmed: now the asker gives no password and the confirming engineer sets a temporary
  one (``test_the_engineer_who_asked_*``, ``test_a_request_carrying_*``, ``test_confirming_*``,
  ``test_no_request_ever_holds_*``, ``test_a_first_password_is_hashed_*``);
- the workspace key holder could change accounts as nobody (``test_nobody_*``, ``test_bootstrap_*``);
- a wrong password for an unknown username ran scrypt twice (``test_*_scrypt_exactly_once``);
- signing in while another thread held a workspace transaction raised ``RuntimeError``
  (``test_sign_in_waits_*``, ``test_concurrent_*``);
- and the same through the real command line (``test_cli_*``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlcipher3 import dbapi2

from engine import audit
from engine.audit import AuditEvent, AuditSigningKey
from engine.cli import main
from engine.errors import (
    AccountLocked,
    AuthenticationError,
    PasswordChangeRequired,
    PasswordRejected,
    PermissionRefused,
    ReauthenticationRequired,
    RfrError,
    SessionExpired,
    UserError,
)
from engine.policy import Policy, load_default_policy
from engine.security import users
from engine.security.keys import WorkspaceKey
from engine.security.users import (
    DEFAULT_SCRYPT,
    AccountRequest,
    Accounts,
    PasswordHash,
    ReauthPurpose,
    Role,
    ScryptParams,
    Session,
    User,
    hash_password,
    verify_password,
)
from engine.workspace import Workspace
from tests.terminals import (
    FAST,
    PASSWORD,
    make_terminal,
    new_workspace,
    provision,
    reopen,
    synthetic_faces,
    terminal_config,
)

OTHER = "a different passphrase"
FIRST = "first password, set by an engineer"  # what the confirming engineer types for a new account
TEMPORARY = "temporary, set by the confirmer"  # what the confirming engineer types for a reset
TAKEOVER = "the asker's chosen one"  # what an engineer asking for a change would like to set: never taken
WRONG = "not the password"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def policy() -> Policy:
    return load_default_policy()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def add(
    accounts: Accounts,
    name: str,
    roles: list[str],
    *,
    rank: str | None = None,
    display_name: str = "",
    asker: str = "eng1",
    confirmer: str = "eng2",
    change: bool = True,
) -> User:
    """Add an account as a terminal does: one engineer asks, another confirms and sets the first password
    (``FIRST``), the user changes it (to ``PASSWORD``)."""
    request = accounts.request_add(
        name, roles, by=accounts.login(asker, PASSWORD), rank=rank, display_name=display_name
    )
    user = accounts.confirm(request.id, by=accounts.login(confirmer, PASSWORD), password=FIRST)
    return accounts.change_password(name, FIRST, PASSWORD) if change else user


def populate(accounts: Accounts) -> None:
    """Engineers eng1 and eng2, alice (RFR User), ivan (approver, Inspector); every password is PASSWORD."""
    accounts.bootstrap_engineer("eng1", PASSWORD)
    accounts.request_add("eng2", ["engineer"], by=accounts.login("eng1", PASSWORD), password=FIRST)  # at once
    accounts.change_password("eng2", FIRST, PASSWORD)
    add(accounts, "alice", ["rfr_user"], display_name="PC Alice Adams")
    add(accounts, "ivan", [Role.APPROVER], rank="Inspector")


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorkspaceKey, AuditSigningKey]:
    """A closed workspace made by ``populate`` once (at the fixed clock's time), copied by each test that wants it."""
    directory = tmp_path_factory.mktemp("populated") / "ws"
    key, audit_key = WorkspaceKey.generate(), AuditSigningKey.generate()
    with Workspace.create(directory, key, audit_key=audit_key, clock=FakeClock()) as ws:
        populate(Accounts(ws, load_default_policy(), scrypt=FAST))
    return directory, key, audit_key


@pytest.fixture
def ws(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: FakeClock,
    populated: tuple[Path, WorkspaceKey, AuditSigningKey],
) -> Iterator[Workspace]:
    """A workspace of the test's own: a copy of the populated one for tests using ``accounts``, else empty."""
    if "accounts" in request.fixturenames:
        template, key, audit_key = populated
        shutil.copytree(template, tmp_path / "ws")
        workspace = Workspace.open(tmp_path / "ws", key, clock=clock, audit_key=audit_key)
    else:
        workspace = new_workspace(tmp_path / "ws", clock=clock)
    yield workspace
    workspace.close()


@pytest.fixture
def bare(ws: Workspace, policy: Policy) -> Accounts:
    """Accounts of a workspace with no users yet."""
    assert not Accounts(ws, policy, scrypt=FAST).has_users()
    return Accounts(ws, policy, scrypt=FAST)


@pytest.fixture
def accounts(ws: Workspace, policy: Policy) -> Accounts:
    """Accounts made by ``populate``: eng1, eng2, alice, ivan, each with PASSWORD (nobody signed in)."""
    accounts = Accounts(ws, policy, scrypt=FAST)
    assert accounts.engineers() == ["eng1", "eng2"]
    return accounts


def log(ws: Workspace, after: int = 0) -> list[AuditEvent]:
    with ws.reading() as conn:
        return list(audit.events(conn, after + 1))


def head(ws: Workspace) -> int:
    events = log(ws)
    return events[-1].seq if events else 0


def actions(ws: Workspace, after: int = 0) -> list[str]:
    return [e.action for e in log(ws, after)]


def verifies(ws: Workspace) -> bool:
    with ws.reading() as conn:
        result = audit.verify(conn, ws.audit_public_key)
    assert result.ok, result.problems
    return True


def account_tables(ws: Workspace) -> tuple[list[tuple[Any, ...]], ...]:
    return (
        ws.query("SELECT * FROM users ORDER BY username"),
        ws.query("SELECT * FROM user_roles ORDER BY username, role"),
        ws.query("SELECT * FROM user_requests ORDER BY id"),
    )


def dump(ws: Workspace) -> str:
    """Every value of every table of the (decrypted) database, bytes as hex."""
    values: list[str] = []
    for (table,) in ws.query("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for row in ws.query(f'SELECT * FROM "{table}"'):
            values += [v.hex() if isinstance(v, bytes) else str(v) for v in row]
    return "\n".join(values)


def refuses(call: Callable[[], object], error: type[Exception], message: str) -> None:
    """``call`` raises ``error`` whose whole message is ``message``."""
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value) == message


# Hashing


def test_hash_and_verify() -> None:
    stored = hash_password(PASSWORD, FAST)
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "x", stored)
    assert not verify_password("", stored)
    again = hash_password(PASSWORD, FAST)
    assert again.salt != stored.salt and again.digest != stored.digest, "salts must be per hash"
    assert (stored.n, stored.r, stored.p, len(stored.salt), len(stored.digest)) == (2**10, 8, 1, 16, 32)
    assert PASSWORD not in repr(stored) and stored.digest.hex() not in repr(stored)


def test_default_cost_is_owasp_minimum_with_room_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The terminal's cost (2**17, 8, 1) and a memory limit scrypt accepts for it (checked without running it)."""
    assert (DEFAULT_SCRYPT.n, DEFAULT_SCRYPT.r, DEFAULT_SCRYPT.p) == (2**17, 8, 1)
    asked: dict[str, Any] = {}

    def record(password: bytes, **kwargs: Any) -> bytes:
        asked.update(kwargs)
        return bytes(int(kwargs["dklen"]))

    monkeypatch.setattr(hashlib, "scrypt", record)  # the module users.py calls
    hash_password(PASSWORD)
    n, r, p = asked["n"], asked["r"], asked["p"]
    assert (n, r, p) == (2**17, 8, 1)
    assert asked["maxmem"] >= 128 * r * (n + 2) + 128 * r * p  # OpenSSL's need: V plus B, else it refuses


def test_unicode_forms_of_one_password_match() -> None:
    stored = hash_password("Caf\u00e9 au lait 2025", FAST)
    assert verify_password("Cafe\u0301 au lait 2025", stored)


@pytest.mark.parametrize("n", [1000, 2**9, 2**21])
def test_absurd_cost_parameters_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        ScryptParams(n=n)
    assert not verify_password(PASSWORD, PasswordHash(n, 8, 1, b"salt" * 4, b"x" * 32))


def test_no_password_is_stored_or_audited_in_clear(accounts: Accounts, ws: Workspace, clock: FakeClock) -> None:
    accounts.login("alice", PASSWORD)
    with pytest.raises(AuthenticationError):
        accounts.login("alice", "wrong password guess")
    accounts.change_password("alice", PASSWORD, OTHER)
    eng1 = accounts.login("eng1", PASSWORD)
    eng2 = accounts.login("eng2", PASSWORD)
    with pytest.raises(UserError, match="set by the engineer who confirms it"):
        accounts.request_add("bob", ["rfr_user"], by=eng1, password="an asker's refused password")
    reset = accounts.request_reset("ivan", by=eng1)
    cancelled = accounts.request_reset("alice", by=eng1)
    accounts.cancel(cancelled.id, by=eng2, reason="not asked for by alice")
    accounts.confirm(reset.id, by=eng2, password=TEMPORARY)
    lapsing = accounts.request_add("bob", ["rfr_user"], by=eng1)
    with pytest.raises(PasswordRejected, match="must not contain the username"):
        accounts.confirm(lapsing.id, by=eng2, password="bob's rejected first password")
    clock.advance(hours=25)
    assert accounts.lapse_requests() == 1 and accounts.request(lapsing.id).state == "lapsed"
    text = dump(ws)
    assert "alice" in text and "not asked for by alice" in text
    secrets = (PASSWORD, OTHER, FIRST, TEMPORARY, "wrong password guess", "an asker's refused password")
    for secret in (*secrets, "bob's rejected first password"):
        assert secret not in text
        assert secret.encode().hex() not in text


def test_no_request_ever_holds_a_password(accounts: Accounts, ws: Workspace) -> None:
    """The password is set at confirmation, straight onto the account: a request, pending or decided, holds none.

    (The code before asked the requesting engineer for the password and kept its hash in the
    request until a second engineer confirmed, so the asker knew the password that took effect.)
    """
    eng1, eng2 = accounts.login("eng1", PASSWORD), accounts.login("eng2", PASSWORD)
    requests = [
        accounts.request_reset("ivan", by=eng1),
        accounts.request_add("bob", ["rfr_user"], by=eng1),
        accounts.request_roles("alice", ["tasking_officer"], rank="Sergeant", by=eng1),
    ]
    stored = (
        "SELECT id FROM user_requests "
        "WHERE COALESCE(password_n, password_r, password_p, password_salt, password_hash) IS NOT NULL"
    )
    assert [r.state for r in requests] == ["pending"] * 3 and ws.query(stored) == []
    assert all("password" not in key for r in requests for key in r.to_json())
    accounts.confirm(requests[0].id, by=eng2, password=TEMPORARY)
    accounts.confirm(requests[1].id, by=eng2, password=FIRST)
    accounts.confirm(requests[2].id, by=eng2)
    assert ws.query(stored) == []
    n, salt, digest = ws.query_one(
        "SELECT password_n, password_salt, password_hash FROM users WHERE username = 'ivan'"
    ) or (None, None, None)
    assert n == FAST.n and verify_password(TEMPORARY, PasswordHash(FAST.n, FAST.r, FAST.p, salt, digest))


# Validation


BAD_NAMES = ["A", "a", "Alice", "1alice", "al ice", "alice!", "a" * 33, "", "ålice"]
RESERVED = ["system", "unknown", "workspace-admin", "root"]


def test_bad_and_reserved_usernames_are_refused(accounts: Accounts) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    for name in BAD_NAMES:
        with pytest.raises(UserError, match="is not valid: use 2 to 32 lowercase letters"):
            accounts.request_add(name, ["rfr_user"], by=eng1)
    for name in RESERVED:
        with pytest.raises(UserError, match=f"username '{name}' is reserved for the system"):
            accounts.request_add(name, ["rfr_user"], by=eng1)
    assert accounts.pending_requests(eng1) == []


def test_the_first_engineer_needs_a_valid_name(bare: Accounts) -> None:
    for name in BAD_NAMES:
        with pytest.raises(UserError, match="is not valid: use 2 to 32 lowercase letters"):
            bare.bootstrap_engineer(name, PASSWORD)
    for name in RESERVED:
        with pytest.raises(UserError, match=f"username '{name}' is reserved for the system"):
            bare.bootstrap_engineer(name, PASSWORD)
    assert not bare.has_users()


PASSWORD_RULES = [
    ("short pass", "password too short: use at least 12 characters"),
    ("my name is bob!", "password must not contain the username"),
    ("MY NAME IS BOB!", "password must not contain the username"),
    ("line one\nline two", "control character"),
    ("x" * 1025, "password too long"),
]


def test_password_rules(accounts: Accounts, ws: Workspace) -> None:
    """The rules apply where a password is set: by the confirming engineer, and by the user changing it."""
    eng1, eng2 = accounts.login("eng1", PASSWORD), accounts.login("eng2", PASSWORD)
    add_bob = accounts.request_add("bob", ["rfr_user"], by=eng1)
    reset_alice = accounts.request_reset("alice", by=eng1)
    before = account_tables(ws)
    for password, message in PASSWORD_RULES:
        with pytest.raises(PasswordRejected, match=message):
            accounts.confirm(add_bob.id, by=eng2, password=password)
        for_alice = password.replace("bob", "alice").replace("BOB", "ALICE")
        with pytest.raises(PasswordRejected, match=message):
            accounts.confirm(reset_alice.id, by=eng2, password=for_alice)
        with pytest.raises(PasswordRejected, match=message):
            accounts.change_password("alice", PASSWORD, for_alice)
    assert account_tables(ws) == before, "a rejected first password changes nothing: the request still waits"
    assert [r.id for r in accounts.pending_requests(eng1)] == [add_bob.id, reset_alice.id]
    assert accounts.get_user("alice").failed_attempts == 0  # a rejected new password is not a failed sign-in
    accounts.login("alice", PASSWORD)
    accounts.confirm(add_bob.id, by=eng2, password=FIRST)  # a good one then confirms
    accounts.login("bob", FIRST)


def test_the_first_engineers_passwords_follow_the_rules(bare: Accounts) -> None:
    """The first engineer's own password, and the second engineer's first one (given when added at once)."""
    with pytest.raises(PasswordRejected, match="password too short"):
        bare.bootstrap_engineer("eng1", "short")
    with pytest.raises(PasswordRejected, match="must not contain the username"):
        bare.bootstrap_engineer("eng1", "I am eng1, the engineer")
    assert not bare.has_users()
    bare.bootstrap_engineer("eng1", PASSWORD)
    eng1 = bare.login("eng1", PASSWORD)
    with pytest.raises(PasswordRejected, match="password too short"):
        bare.request_add("eng2", ["engineer"], by=eng1, password="short")
    with pytest.raises(PasswordRejected, match="must not contain the username"):
        bare.request_add("eng2", ["engineer"], by=eng1, password="I am eng2, the engineer")
    assert bare.engineers() == ["eng1"]


def test_roles_and_ranks_are_validated(accounts: Accounts) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    with pytest.raises(UserError, match="unknown role 'admin': use one of rfr_user, tasking_officer"):
        accounts.request_add("bob", ["admin"], by=eng1)
    with pytest.raises(UserError, match="needs at least one role"):
        accounts.request_add("bob", [], by=eng1)
    with pytest.raises(UserError, match="unknown rank 'Inspecter'"):
        accounts.request_add("bob", ["rfr_user"], rank="Inspecter", by=eng1)
    with pytest.raises(UserError, match=r"role approver needs the rank of Inspector or above .* 'Sergeant' is below"):
        accounts.request_add("bob", ["approver"], rank="Sergeant", by=eng1)
    with pytest.raises(UserError, match=r"role approver needs .* no rank was given"):
        accounts.request_add("bob", ["approver"], by=eng1)
    with pytest.raises(UserError, match=r"role approver needs .* 'Sergeant' is below"):
        accounts.request_roles("alice", ["approver"], rank="Sergeant", by=eng1)
    with pytest.raises(UserError, match="display name: use at most 100 printable characters"):
        accounts.request_add("bob", ["rfr_user"], by=eng1, display_name="x\ny")
    staff = add(accounts, "carol", ["approver", "peer_reviewer"], rank="Police Staff Band C")
    assert staff.roles == {Role.APPROVER, Role.PEER_REVIEWER} and staff.rank == "Police Staff Band C"
    with pytest.raises(UserError, match="user 'carol' already exists"):
        accounts.request_add("carol", ["rfr_user"], by=eng1)
    with pytest.raises(UserError, match="no user 'nobody' on this terminal"):
        accounts.request_roles("nobody", ["rfr_user"], rank=None, by=eng1)
    with pytest.raises(UserError, match="no user 'nobody' on this terminal"):
        accounts.request_reset("nobody", by=eng1)


def test_the_database_refuses_an_unknown_role(accounts: Accounts, ws: Workspace) -> None:
    with pytest.raises(dbapi2.IntegrityError), ws.transaction() as conn:
        conn.execute("INSERT INTO user_roles (username, role) VALUES ('alice', 'superuser')")
    with pytest.raises(dbapi2.IntegrityError), ws.transaction() as conn:
        conn.execute(
            "INSERT INTO user_requests (kind, username, requested_by, requested_at, state) "
            "VALUES ('grant-everything', 'alice', 'eng1', '2025-03-01T09:00:00Z', 'pending')"
        )


def test_user_records(accounts: Accounts, clock: FakeClock) -> None:
    alice = accounts.get_user("alice")
    assert alice.display_name == "PC Alice Adams" and alice.roles == {Role.RFR_USER} and alice.rank is None
    assert [u.username for u in accounts.list_users()] == ["alice", "eng1", "eng2", "ivan"]
    assert accounts.engineers() == ["eng1", "eng2"]
    shown = alice.as_dict(clock())
    assert shown["roles"] == ["rfr_user"] and shown["locked"] is False and shown["must_change_password"] is False
    assert not any("hash" in key or "salt" in key for key in shown)
    with pytest.raises(UserError, match="no user 'nobody'"):
        accounts.get_user("nobody")


def test_the_directory_is_for_engineers_and_auditors_and_the_look_is_recorded(
    accounts: Accounts, ws: Workspace
) -> None:
    add(accounts, "audrey", ["auditor"])
    before = head(ws)
    names = [u.username for u in accounts.directory(accounts.login("audrey", PASSWORD))]
    assert names == ["alice", "audrey", "eng1", "eng2", "ivan"]
    assert len(accounts.directory(accounts.login("eng2", PASSWORD))) == 5
    listed = [e for e in log(ws, before) if e.action == "user.list"]
    assert [(e.actor, e.details["users"]) for e in listed] == [("audrey", 5), ("eng2", 5)]
    refuses(
        lambda: accounts.directory(accounts.login("alice", PASSWORD)),
        PermissionRefused,
        "listing users refused: it needs the Engineer or Auditor role; alice holds neither",
    )


# Sign-in and lockout


def test_login_and_wrong_password(accounts: Accounts, ws: Workspace) -> None:
    before = head(ws)
    session = accounts.login("alice", PASSWORD)
    assert session.username == "alice" and session.id not in repr(session)
    assert accounts.check(session).username == "alice"
    refuses(lambda: accounts.login("alice", WRONG), AuthenticationError, "wrong username or password")
    refuses(lambda: accounts.login("mallory", PASSWORD), AuthenticationError, "wrong username or password")
    events = log(ws, before)
    assert [e.action for e in events] == ["user.sign_in", "user.sign_in_refused", "user.sign_in_refused"]
    assert events[0].actor == "alice" and events[0].details["purpose"] == "sign_in"
    assert events[1].actor == "alice" and events[1].details["reason"] == "wrong password"
    assert events[2].actor == "unknown" and events[2].details["reason"] == "unknown username"
    assert "mallory" not in str(events[2]), "an unknown username may be a mistyped password: never record it"


def test_lockout_after_repeated_failures_then_it_expires(accounts: Accounts, clock: FakeClock, ws: Workspace) -> None:
    before = head(ws)
    for _ in range(4):
        refuses(lambda: accounts.login("alice", WRONG), AuthenticationError, "wrong username or password")
    with pytest.raises(AccountLocked, match="now locked for 15 minutes after 5 failed attempts"):
        accounts.login("alice", WRONG)
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(AccountLocked, match="locked until 09:15 UTC"):
        accounts.login("alice", PASSWORD)
    clock.advance(seconds=1)
    accounts.login("alice", PASSWORD)
    assert accounts.get_user("alice").failed_attempts == 0
    assert actions(ws, before) == [
        *["user.sign_in_refused"] * 4,
        "user.locked_out",
        "user.sign_in_refused",
        "user.sign_in",
    ]
    locked_out = next(e for e in log(ws, before) if e.action == "user.locked_out")
    assert locked_out.details["failed_attempts"] == 5
    assert audit.parse_utc(locked_out.details["until"]) == datetime(2025, 3, 1, 9, 15, tzinfo=UTC)
    assert log(ws, before)[-2].details["reason"] == "locked out"


def test_an_expired_lockout_gives_a_fresh_count(accounts: Accounts, clock: FakeClock) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", WRONG)
    clock.advance(minutes=16)
    for _ in range(4):
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            accounts.login("alice", WRONG)
    with pytest.raises(AccountLocked):
        accounts.login("alice", WRONG)


def test_success_resets_the_failure_count(accounts: Accounts) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", WRONG)
    accounts.login("alice", PASSWORD)
    for _ in range(4):
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            accounts.login("alice", WRONG)


def test_engineer_unlocks_and_others_cannot(accounts: Accounts, ws: Workspace, clock: FakeClock) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", WRONG)
    ivan = accounts.login("ivan", PASSWORD)
    refuses(
        lambda: accounts.unlock_user("alice", by=ivan),
        PermissionRefused,
        "unlocking an account refused: it needs the Engineer role; ivan lacks it",
    )
    eng1 = accounts.login("eng1", PASSWORD)
    assert not accounts.unlock_user("alice", by=eng1).is_locked(clock())
    accounts.login("alice", PASSWORD)
    unlock = next(e for e in log(ws) if e.action == "user.unlock")
    assert unlock.actor == "eng1" and unlock.subjects == {"user": "alice"}


def test_an_engineer_cannot_unlock_themselves(accounts: Accounts) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    refuses(
        lambda: accounts.unlock_user("eng1", by=eng1),
        PermissionRefused,
        "unlocking an account refused: nobody changes their own account this way "
        "(change your own password with 'rfr user passwd')",
    )


def test_engineer_lock_ends_sessions_until_unlocked(accounts: Accounts, ws: Workspace) -> None:
    alice = accounts.login("alice", PASSWORD)
    eng1 = accounts.login("eng1", PASSWORD)
    accounts.lock_user("alice", by=eng1, reason="left the force")
    with pytest.raises(SessionExpired):
        accounts.check(alice)
    refuses(
        lambda: accounts.login("alice", PASSWORD),
        AccountLocked,
        "account 'alice' is locked; ask an engineer to unlock it",
    )
    refused = log(ws)[-1]
    assert refused.action == "user.sign_in_refused" and refused.details["reason"] == "locked by an engineer"
    accounts.unlock_user("alice", by=eng1)
    accounts.login("alice", PASSWORD)
    lock = next(e for e in log(ws) if e.action == "user.lock")
    assert lock.actor == "eng1" and lock.details == {"reason": "left the force"}


@pytest.mark.parametrize("reason", ["", "   ", "\t\n "], ids=["empty", "spaces", "whitespace"])
def test_locking_an_account_needs_a_reason_and_nothing_changes_without_one(
    accounts: Accounts, ws: Workspace, reason: str
) -> None:
    alice = accounts.login("alice", PASSWORD)
    eng1 = accounts.login("eng1", PASSWORD)
    before = head(ws)
    refuses(
        lambda: accounts.lock_user("alice", by=eng1, reason=reason),
        UserError,
        "locking alice's account needs a reason, which is recorded (--reason TEXT)",
    )
    assert not accounts.get_user("alice").locked_by_admin and accounts.is_signed_in(alice)
    assert [e.action for e in log(ws, before)] == []  # nothing recorded: nothing happened
    accounts.lock_user("alice", by=eng1, reason="  suspended\n pending   inquiry ")
    assert log(ws, before)[-1].details == {"reason": "suspended pending inquiry"}  # recorded on one line


def test_a_locked_out_user_loses_a_live_session(accounts: Accounts, ws: Workspace, policy: Policy) -> None:
    """Failures elsewhere (another terminal process, a guesser) lock the account and end its session."""
    alice = accounts.login("alice", PASSWORD)
    other = Accounts(ws, policy, scrypt=FAST)
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            other.login("alice", WRONG)
    with pytest.raises(SessionExpired, match="account is locked"):
        accounts.check(alice)


def test_weaker_stored_hash_is_upgraded_at_sign_in(accounts: Accounts, ws: Workspace, policy: Policy) -> None:
    stronger = Accounts(ws, policy, scrypt=ScryptParams(n=2**11))
    stronger.login("alice", PASSWORD)
    assert ws.query_one("SELECT password_n FROM users WHERE username = 'alice'") == (2**11,)
    stronger.login("alice", PASSWORD)
    accounts.login("alice", PASSWORD)  # a weaker terminal still reads the stronger hash, and keeps it
    assert ws.query_one("SELECT password_n FROM users WHERE username = 'alice'") == (2**11,)


def test_a_tampered_hash_record_fails_closed(accounts: Accounts, ws: Workspace) -> None:
    with ws.transaction() as conn:
        conn.execute("UPDATE users SET password_n = ? WHERE username = 'alice'", (2**30,))
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        accounts.login("alice", PASSWORD)


# Sessions


def test_idle_timeout(accounts: Accounts, clock: FakeClock) -> None:
    session = accounts.login("alice", PASSWORD)
    clock.advance(minutes=9, seconds=59)
    accounts.check(session)  # activity: the idle period starts again
    clock.advance(minutes=10)
    accounts.check(session)
    clock.advance(minutes=10, seconds=1)
    with pytest.raises(SessionExpired, match="signed out after 10 minutes without activity"):
        accounts.check(session)
    with pytest.raises(SessionExpired, match="not signed in"):
        accounts.check(session)


def test_logout_and_forged_sessions(accounts: Accounts, clock: FakeClock, ws: Workspace) -> None:
    session = accounts.login("alice", PASSWORD)
    accounts.logout(session)
    assert actions(ws)[-1] == "user.sign_out" and not accounts.is_signed_in(session)
    with pytest.raises(SessionExpired):
        accounts.check(session)
    forged = Session(id="0" * 32, username="ivan", started_at=clock())
    with pytest.raises(SessionExpired):
        accounts.check(forged)
    real = accounts.login("alice", PASSWORD)
    with pytest.raises(SessionExpired):
        accounts.check(Session(id=real.id, username="ivan", started_at=clock()))


def test_sessions_belong_to_the_accounts_that_issued_them(accounts: Accounts, ws: Workspace, policy: Policy) -> None:
    session = accounts.login("ivan", PASSWORD)
    with pytest.raises(SessionExpired, match="not signed in"):
        Accounts(ws, policy, scrypt=FAST).check(session)


def test_require_role(accounts: Accounts) -> None:
    alice = accounts.login("alice", PASSWORD)
    assert accounts.require_role(alice, Role.RFR_USER).username == "alice"
    refuses(
        lambda: accounts.require_role(alice, Role.APPROVER),
        PermissionRefused,
        "this needs the Approver role; alice does not hold it",
    )


def test_a_confirmed_roles_change_ends_live_sessions_and_applies_at_the_next(accounts: Accounts) -> None:
    alice = accounts.login("alice", PASSWORD)
    request = accounts.request_roles(
        "alice", ["rfr_user", "peer_reviewer"], rank="Sergeant", by=accounts.login("eng1", PASSWORD)
    )
    assert request.state == "pending" and accounts.get_user("alice").roles == {Role.RFR_USER}
    assert accounts.check(alice).roles == {Role.RFR_USER}, "nothing changes until a second engineer confirms"
    accounts.confirm(request.id, by=accounts.login("eng2", PASSWORD))
    with pytest.raises(SessionExpired):
        accounts.check(alice)
    again = accounts.login("alice", PASSWORD)
    assert accounts.require_role(again, Role.PEER_REVIEWER).rank == "Sergeant"


# Password change


def test_password_change(accounts: Accounts, clock: FakeClock, ws: Workspace) -> None:
    clock.advance(days=1)
    accounts.change_password("alice", PASSWORD, OTHER)
    assert accounts.get_user("alice").password_changed_at == clock()
    with pytest.raises(AuthenticationError):
        accounts.login("alice", PASSWORD)
    accounts.login("alice", OTHER)
    with pytest.raises(PasswordRejected, match="must differ from the current one"):
        accounts.change_password("alice", OTHER, OTHER)
    change = next(e for e in log(ws) if e.action == "user.password_change" and e.actor == "alice")
    assert change.subjects == {"user": "alice"}


def test_password_change_with_a_wrong_current_password_counts_towards_lockout(accounts: Accounts) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            accounts.change_password("alice", WRONG, OTHER)
    with pytest.raises(AccountLocked):
        accounts.change_password("alice", WRONG, OTHER)
    with pytest.raises(AccountLocked):
        accounts.login("alice", PASSWORD)


def test_a_confirmed_reset_clears_a_lockout_but_not_an_engineers_lock(accounts: Accounts) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", WRONG)
    reset = accounts.request_reset("alice", by=accounts.login("eng1", PASSWORD))
    accounts.confirm(reset.id, by=accounts.login("eng2", PASSWORD), password=TEMPORARY)
    assert accounts.get_user("alice").must_change_password
    accounts.change_password("alice", TEMPORARY, OTHER)
    accounts.check(accounts.login("alice", OTHER))

    eng1 = accounts.login("eng1", PASSWORD)
    accounts.lock_user("ivan", by=eng1, reason="suspended")
    reset = accounts.request_reset("ivan", by=eng1)
    accounts.confirm(reset.id, by=accounts.login("eng2", PASSWORD), password=TEMPORARY)
    with pytest.raises(AccountLocked, match="locked; ask an engineer to unlock it"):
        accounts.login("ivan", TEMPORARY)


# Re-authentication for approving and peer-review sign-off


def test_fresh_sign_in_authorises_one_action(accounts: Accounts) -> None:
    ivan = accounts.login("ivan", PASSWORD)
    accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)
    refuses(
        lambda: accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE),
        ReauthenticationRequired,
        "approving needs your password entered again just before it: re-enter it",
    )
    accounts.reauthenticate(ivan, PASSWORD, ReauthPurpose.APPROVE)
    accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)


def test_reauthentication_goes_stale(accounts: Accounts, clock: FakeClock, ws: Workspace) -> None:
    ivan = accounts.login("ivan", PASSWORD)
    clock.advance(seconds=121)
    with pytest.raises(ReauthenticationRequired, match="signing off a peer review needs your password"):
        accounts.require_reauthentication(ivan, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
    accounts.reauthenticate(ivan, PASSWORD, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
    clock.advance(seconds=120)
    accounts.require_reauthentication(ivan, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
    event = log(ws)[-1]
    assert (event.action, event.actor, event.details) == (
        "user.reauthenticate",
        "ivan",
        {"purpose": "peer_review_sign_off"},
    )


def test_wrong_reauthentication_counts_and_locks_out(accounts: Accounts, ws: Workspace) -> None:
    before = head(ws)
    ivan = accounts.login("ivan", PASSWORD)
    accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            accounts.reauthenticate(ivan, WRONG, ReauthPurpose.APPROVE)
        with pytest.raises(ReauthenticationRequired):
            accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)
    with pytest.raises(AccountLocked):
        accounts.reauthenticate(ivan, WRONG, ReauthPurpose.APPROVE)
    with pytest.raises(SessionExpired):
        accounts.check(ivan)
    refused = [e for e in log(ws, before) if e.action == "user.sign_in_refused"]
    assert len(refused) == 4 and {e.details["purpose"] for e in refused} == {"approve"}


# Audit


def test_account_activity_is_audited_and_the_chain_verifies(bare: Accounts, ws: Workspace, clock: FakeClock) -> None:
    before = head(ws)
    bare.bootstrap_engineer("eng1", PASSWORD)
    eng1 = bare.login("eng1", PASSWORD)
    bare.request_add("eng2", ["engineer"], by=eng1, password=FIRST)
    bare.change_password("eng2", FIRST, PASSWORD)
    eng2 = bare.login("eng2", PASSWORD)
    ask = bare.request_add("alice", ["rfr_user"], by=eng1)
    bare.confirm(ask.id, by=eng2, password=FIRST)
    bare.change_password("alice", FIRST, PASSWORD)
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            bare.login("alice", WRONG)
    bare.unlock_user("alice", by=eng2)
    roles = bare.request_roles("alice", ["tasking_officer"], rank="Sergeant", by=eng1)
    bare.cancel(roles.id, by=eng2, reason="wrong person")
    bare.request_reset("alice", by=eng2)
    bare.lock_user("alice", by=eng1, reason="on leave")
    bare.directory(eng1)
    bare.logout(eng1)
    clock.advance(hours=24, seconds=1)
    assert bare.lapse_requests() == 1
    events = log(ws, before)
    assert [(e.actor, e.action, e.subjects.get("user")) for e in events] == [
        ("system", "user.bootstrap", "eng1"),
        ("eng1", "user.sign_in", "eng1"),
        ("eng1", "user.add", "eng2"),
        ("eng2", "user.password_change", "eng2"),
        ("eng2", "user.sign_in", "eng2"),
        ("eng1", "user.request", "alice"),
        ("eng1", "user.add", "alice"),
        ("alice", "user.password_change", "alice"),
        *[("alice", "user.sign_in_refused", "alice")] * 4,
        ("alice", "user.locked_out", "alice"),
        ("eng2", "user.unlock", "alice"),
        ("eng1", "user.request", "alice"),
        ("eng2", "user.request_cancelled", "alice"),
        ("eng2", "user.request", "alice"),
        ("eng1", "user.lock", "alice"),
        ("eng1", "user.list", None),
        ("eng1", "user.sign_out", "eng1"),
        ("system", "user.request_lapsed", "alice"),
    ]
    by_action = {e.action: e for e in events}
    assert events[2].details["confirmed_by"] is None and "no one else could confirm" in events[2].details["note"]
    assert events[6].details["confirmed_by"] == "eng2" and events[6].details["request"] == ask.id
    assert by_action["user.request_cancelled"].details == {"request": roles.id, "reason": "wrong person"}
    assert by_action["user.bootstrap"].details["roles"] == ["engineer"]
    assert verifies(ws)


def test_works_on_an_encrypted_workspace(accounts: Accounts, ws: Workspace) -> None:
    accounts.login("alice", PASSWORD)
    ws.close()
    for path in ws.directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"alice" not in data and b"PC Alice Adams" not in data, path


# Property: the lockout rule against a model


@settings(max_examples=30, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=1, max_size=25))
def test_lockout_matches_the_rule(tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[bool, int]]) -> None:
    """N consecutive failures lock for M minutes; while locked nothing gets in; success resets the count."""
    policy = load_default_policy()
    clock = FakeClock()
    with new_workspace(tmp_path_factory.mktemp("lockout") / "ws", clock=clock) as ws:
        acc = Accounts(ws, policy, scrypt=FAST)
        acc.bootstrap_engineer("alice", PASSWORD)
        failures, locked_until = 0, None
        for correct, minutes in steps:
            clock.advance(minutes=minutes)
            now = clock()
            if locked_until is not None and now >= locked_until:
                failures, locked_until = 0, None
            try:
                acc.login("alice", PASSWORD if correct else WRONG)
                outcome = "in"
            except AccountLocked:
                outcome = "locked"
            except AuthenticationError:
                outcome = "refused"
            if locked_until is not None:
                expected = "locked"
            elif correct:
                expected, failures = "in", 0
            else:
                failures += 1
                expected = "refused"
                if failures >= policy.lockout.max_failed_attempts:
                    expected, failures = "locked", 0
                    locked_until = now + timedelta(minutes=policy.lockout.lock_minutes)
            assert outcome == expected
        assert verifies(ws)


# Issue 14: "An engineer can reset an approver's password and then approve as them."
# The old code had ``reset_password(username, password, by=engineer)``: one engineer set the
# password at once, signed in with it, and the session held the approver role
# (``require_role(session, APPROVER)`` passed). The code after it took two engineers, but the one
# who asked chose the password (``request_reset(username, password, by=)``): once anyone confirmed,
# the asker signed in with it. Now the asker gives no password; the confirming engineer sets a
# temporary one that the account must change before doing anything. Each test below fails on
# one of those behaviours.


def test_a_reset_does_nothing_until_a_second_engineer_confirms(accounts: Accounts, ws: Workspace) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    request = accounts.request_reset("ivan", by=eng1)
    asked = log(ws)[-1]
    assert (asked.actor, asked.action, asked.subjects) == ("eng1", "user.request", {"user": "ivan"})
    assert {k: v for k, v in asked.details.items() if v is not None} == {"request": request.id, "kind": "reset"}
    assert (request.kind, request.state, request.requested_by) == ("reset", "pending", "eng1")
    ivan = accounts.login("ivan", PASSWORD)  # his own password still works, his session is whole
    accounts.require_role(ivan, Role.APPROVER)
    assert not accounts.get_user("ivan").must_change_password
    eng2 = accounts.login("eng2", PASSWORD)
    assert [r.id for r in accounts.pending_requests(eng2)] == [request.id]
    assert accounts.pending_requests(eng2)[0].describe() == "reset the password of ivan"


def test_a_request_carrying_a_password_is_refused(accounts: Accounts, ws: Workspace) -> None:
    """The engineer who asks never sets a password: not for a new account, not for a reset, not for roles."""
    eng1 = accounts.login("eng1", PASSWORD)
    before, seq = account_tables(ws), head(ws)
    refusal = (
        "the first password of a new account is set by the engineer who confirms it, not the one who asks: "
        "ask without a password"
    )
    for roles, rank in ((["approver"], "Inspector"), (["rfr_user"], None), (["engineer"], None)):
        refuses(
            lambda: accounts.request_add("bob", roles, rank=rank, by=eng1, password=TAKEOVER),  # noqa: B023
            UserError,
            refusal,
        )
    # Refused before the password's own rules are looked at: the rule broken is giving one at all.
    refuses(lambda: accounts.request_add("bob", ["rfr_user"], by=eng1, password="short"), UserError, refusal)
    assert (account_tables(ws), head(ws)) == (before, seq), "a refused request writes nothing"
    for method in (Accounts.request_reset, Accounts.request_roles):
        assert "password" not in inspect.signature(method).parameters, method.__name__
    reset_with_a_password: Any = accounts.request_reset
    with pytest.raises(TypeError):
        reset_with_a_password("ivan", TAKEOVER, by=eng1)
    refuses(lambda: accounts.login("bob", TAKEOVER), AuthenticationError, "wrong username or password")


def test_confirming_an_add_or_reset_needs_the_first_password_and_a_roles_change_none(
    accounts: Accounts, ws: Workspace
) -> None:
    eng1, eng2 = accounts.login("eng1", PASSWORD), accounts.login("eng2", PASSWORD)
    add_bob = accounts.request_add("bob", ["approver"], rank="Inspector", by=eng1)
    reset_ivan = accounts.request_reset("ivan", by=eng1)
    roles_alice = accounts.request_roles("alice", ["rfr_user", "peer_reviewer"], rank="Sergeant", by=eng1)
    before, seq = account_tables(ws), head(ws)
    give = "sets the first password: give it (RFR_NEW_PASSWORD or the prompt), then hand it to its owner"
    refuses(
        lambda: accounts.confirm(add_bob.id, by=eng2),
        UserError,
        f"confirming request {add_bob.id} (add bob (Approver; rank Inspector)) {give}",
    )
    refuses(
        lambda: accounts.confirm(reset_ivan.id, by=eng2),
        UserError,
        f"confirming request {reset_ivan.id} (reset the password of ivan) {give}",
    )
    refuses(
        lambda: accounts.confirm(roles_alice.id, by=eng2, password=TEMPORARY),
        UserError,
        f"request {roles_alice.id} changes roles: it takes no password",
    )
    assert (account_tables(ws), head(ws)) == (before, seq), "a refused confirmation writes nothing"
    assert [r.state for r in map(accounts.request, (add_bob.id, reset_ivan.id, roles_alice.id))] == ["pending"] * 3

    assert accounts.confirm(add_bob.id, by=eng2, password=FIRST).must_change_password
    assert accounts.confirm(reset_ivan.id, by=eng2, password=TEMPORARY).must_change_password
    alice = accounts.confirm(roles_alice.id, by=eng2)
    assert alice.roles == {Role.RFR_USER, Role.PEER_REVIEWER} and not alice.must_change_password
    accounts.check(accounts.login("alice", PASSWORD))  # a roles change leaves the password alone
    accounts.login("bob", FIRST)
    accounts.login("ivan", TEMPORARY)
    refuses(lambda: accounts.login("ivan", PASSWORD), AuthenticationError, "wrong username or password")


def test_the_engineer_who_asked_for_a_reset_cannot_sign_in_as_its_user(accounts: Accounts, ws: Workspace) -> None:
    """The takeover of issue 14, tried by the engineer who asks: they never know any password of ivan's.

    Only the confirming engineer's temporary password opens the account, and only to change it;
    once ivan has changed it, nothing either engineer ever typed opens it again.
    """
    ivan_before = accounts.login("ivan", PASSWORD)
    eng1 = accounts.login("eng1", PASSWORD)
    request = accounts.request_reset("ivan", by=eng1)
    # All the asker sees of the request, and of the log, holds no password.
    seen = json.dumps([request.to_json(), [r.to_json() for r in accounts.pending_requests(eng1)]])
    assert TEMPORARY not in seen and "password_hash" not in seen
    accounts.confirm(request.id, by=accounts.login("eng2", PASSWORD), password=TEMPORARY)
    confirmed = log(ws)[-1]
    assert (confirmed.action, confirmed.actor, confirmed.details["confirmed_by"]) == (
        "user.password_reset",
        "eng1",
        "eng2",
    )
    assert TEMPORARY not in json.dumps([e.details for e in log(ws)])
    with pytest.raises(SessionExpired):
        accounts.check(ivan_before)  # a reset ends the account's sessions
    # Whatever the asker tries: ivan's old password, the one they would have chosen, the first one of accounts.
    for guess in (PASSWORD, TAKEOVER, FIRST):
        refuses(lambda: accounts.login("ivan", guess), AuthenticationError, "wrong username or password")  # noqa: B023
    # The temporary password opens a session that can only change it.
    taken = accounts.login("ivan", TEMPORARY)
    must = "ivan must choose a new password before doing anything else (it was set by an engineer)"
    refuses(lambda: accounts.check(taken), PasswordChangeRequired, must)
    refuses(lambda: accounts.require_role(taken, Role.APPROVER), PasswordChangeRequired, must)
    refuses(lambda: accounts.require_reauthentication(taken, ReauthPurpose.APPROVE), PasswordChangeRequired, must)
    refuses(lambda: accounts.reauthenticate(taken, TEMPORARY, ReauthPurpose.APPROVE), PasswordChangeRequired, must)
    assert accounts.check(taken, allow_password_change=True).username == "ivan"
    accounts.change_password("ivan", TEMPORARY, OTHER)
    assert accounts.require_role(taken, Role.APPROVER).username == "ivan"  # the session goes on once changed
    # Changed: the temporary password is spent, and nothing either engineer typed opens the account.
    for guess in (TEMPORARY, PASSWORD, TAKEOVER, FIRST):
        refuses(lambda: accounts.login("ivan", guess), AuthenticationError, "wrong username or password")  # noqa: B023
    assert accounts.require_role(accounts.login("ivan", OTHER), Role.APPROVER).username == "ivan"


def test_a_reset_session_can_do_nothing_at_the_terminal(tmp_path: Path) -> None:
    """The same at the terminal: casework and libraries refuse a session that must change its password."""
    with make_terminal(tmp_path / "ws") as terminal:
        sessions = provision(terminal, {"ivan": (["approver"], "Inspector")})
        accounts = terminal.accounts
        request = accounts.request_reset("ivan", by=sessions["eng1"])
        accounts.confirm(request.id, by=sessions["eng2"], password=TEMPORARY)
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            terminal.sign_in("ivan", PASSWORD)
        taken = terminal.sign_in("ivan", TEMPORARY)
        for attempt in (
            lambda: terminal.user(taken),
            lambda: terminal.cases.list_cases(taken),
            lambda: terminal.libraries.listing(taken),
        ):
            with pytest.raises(PasswordChangeRequired, match="ivan must choose a new password"):
                attempt()


def test_an_engineer_cannot_confirm_their_own_request(accounts: Accounts, ws: Workspace) -> None:
    """Refused whether or not they give the first password, before any password is looked at."""
    eng1 = accounts.login("eng1", PASSWORD)
    for request, password in (
        (accounts.request_reset("ivan", by=eng1), TAKEOVER),
        (accounts.request_add("mallory", ["approver"], rank="Inspector", by=eng1), TAKEOVER),
        (accounts.request_add("mallet", ["approver"], rank="Inspector", by=eng1), "short"),
        (accounts.request_roles("alice", ["approver"], rank="Chief Inspector", by=eng1), None),
    ):
        before = account_tables(ws)
        for typed in dict.fromkeys((password, None)):
            refuses(
                lambda: accounts.confirm(request.id, by=eng1, password=typed),  # noqa: B023 - called at once
                PermissionRefused,
                "confirmation refused: eng1 asked for this change; a second engineer must confirm it",
            )
            refuses(
                lambda: accounts.confirmable(request.id, by=eng1),  # noqa: B023 - called at once
                PermissionRefused,
                "confirmation refused: eng1 asked for this change; a second engineer must confirm it",
            )
        assert account_tables(ws) == before and accounts.request(request.id).state == "pending"
    for name in ("ivan", "mallory"):
        refuses(lambda: accounts.login(name, TAKEOVER), AuthenticationError, "wrong username or password")  # noqa: B023


def test_nobody_asks_for_or_confirms_a_change_to_their_own_account(accounts: Accounts, ws: Workspace) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    eng2 = accounts.login("eng2", PASSWORD)
    own = "{} refused: nobody changes their own account this way (change your own password with 'rfr user passwd')"
    refuses(lambda: accounts.request_reset("eng1", by=eng1), PermissionRefused, own.format("resetting a password"))
    refuses(
        lambda: accounts.request_roles("eng1", ["engineer", "approver"], rank="Inspector", by=eng1),
        PermissionRefused,
        own.format("changing roles"),
    )
    # eng1 asks to reset eng2's password: eng2 may not confirm it, so cannot choose their own temporary password.
    request = accounts.request_reset("eng2", by=eng1)
    before = account_tables(ws)
    for typed in (TEMPORARY, None):
        refuses(
            lambda: accounts.confirm(request.id, by=eng2, password=typed),  # noqa: B023 - called at once
            PermissionRefused,
            own.format("confirming an account change"),
        )
    assert account_tables(ws) == before
    # A third engineer can.
    add(accounts, "eng3", ["engineer"])
    accounts.confirm(request.id, by=accounts.login("eng3", PASSWORD), password=TEMPORARY)
    assert accounts.get_user("eng2").must_change_password


def test_an_engineer_cannot_grant_themselves_the_approver_role(accounts: Accounts, ws: Workspace) -> None:
    """Not by changing their own roles, not with the other engineer's help, not alone through a new account."""
    eng1 = accounts.login("eng1", PASSWORD)
    eng2 = accounts.login("eng2", PASSWORD)
    with pytest.raises(PermissionRefused, match="changing roles refused: nobody changes their own account"):
        accounts.request_roles("eng1", ["engineer", "approver"], rank="Inspector", by=eng1)
    # Two engineers asking for each other: neither can confirm (one asked, the other is its subject).
    for asker, subject, other in ((eng1, "eng2", eng2), (eng2, "eng1", eng1)):
        request = accounts.request_roles(subject, ["engineer", "approver"], rank="Inspector", by=asker)
        for confirmer in (asker, other):
            with pytest.raises(PermissionRefused):
                accounts.confirm(request.id, by=confirmer)
    # A puppet approver: eng1 cannot give it a password when asking, nor confirm it to set one.
    with pytest.raises(UserError, match="set by the engineer who confirms it, not the one who asks"):
        accounts.request_add("puppet", ["approver"], rank="Inspector", by=eng1, password=TAKEOVER)
    puppet = accounts.request_add("puppet", ["approver"], rank="Inspector", by=eng1)
    with pytest.raises(PermissionRefused, match="confirmation refused: eng1 asked for this change"):
        accounts.confirm(puppet.id, by=eng1, password=TAKEOVER)
    refuses(lambda: accounts.login("puppet", TAKEOVER), AuthenticationError, "wrong username or password")
    assert "puppet" not in {u.username for u in accounts.list_users()}
    assert accounts.get_user("eng1").roles == accounts.get_user("eng2").roles == {Role.ENGINEER}
    assert not any(e.action == "user.roles_change" for e in log(ws))


def test_a_lone_engineer_can_add_only_a_plain_engineer_without_a_second(bare: Accounts, ws: Workspace) -> None:
    """The one exception (the second engineer of a terminal with one) grants nothing beyond engineer."""
    bare.bootstrap_engineer("eng1", PASSWORD)
    eng1 = bare.login("eng1", PASSWORD)
    asker_password = "set by the engineer who confirms it, not the one who asks"
    for roles in (["engineer", "approver"], ["approver"], ["auditor"]):
        assert not bare.adds_at_once(roles, by=eng1)
        with pytest.raises(UserError, match=asker_password):
            bare.request_add("puppet", roles, by=eng1, rank="Inspector", password=FIRST)
        request = bare.request_add("puppet", roles, by=eng1, rank="Inspector")
        assert request.state == "pending"
        with pytest.raises(PermissionRefused, match="confirmation refused: eng1 asked for this change"):
            bare.confirm(request.id, by=eng1, password=FIRST)
    assert [u.username for u in bare.list_users()] == ["eng1"]
    assert bare.adds_at_once(["engineer"], by=eng1)
    before = account_tables(ws)
    refuses(
        lambda: bare.request_add("eng2", ["engineer"], by=eng1),
        UserError,
        "eng2 is this terminal's second engineer, added at once (nobody else could confirm): "
        "give their first password (RFR_NEW_PASSWORD or the prompt)",
    )
    assert account_tables(ws) == before
    second = bare.request_add("eng2", ["engineer"], by=eng1, password=FIRST)
    assert second.state == "confirmed" and second.decided_by is None
    added = log(ws)[-1]
    assert (added.actor, added.action, added.details["confirmed_by"]) == ("eng1", "user.add", None)
    assert "second engineer of a terminal with one engineer" in added.details["note"]
    assert bare.get_user("eng2").must_change_password
    assert not bare.adds_at_once(["engineer"], by=eng1)
    with pytest.raises(UserError, match=asker_password):
        bare.request_add("eng3", ["engineer"], by=eng1, password=FIRST)
    third = bare.request_add("eng3", ["engineer"], by=eng1)
    assert third.state == "pending", "with two engineers, a third engineer takes a confirmation"
    bare.lock_user("eng2", by=eng1, reason="away")
    assert not bare.adds_at_once(["engineer"], by=eng1)
    fourth = bare.request_add("eng4", ["engineer"], by=eng1)
    assert fourth.state == "pending", "locking the other engineer does not make one alone again"


def test_only_one_engineer_is_ever_added_alone_even_at_once(tmp_path: Path, policy: Policy) -> None:
    """Requests racing on several threads: exactly one is the unconfirmed second engineer.

    The rebuilt code first decided "alone" before its transaction: six threads of the lone
    engineer each asking for an engineer made several engineers at once, none confirmed
    (in about half of the trials). Now it is decided inside the transaction. Each thread gives a
    first password, as six commands would that each found ``adds_at_once`` true: one is added,
    the others are refused for carrying a password (none is left pending with one).
    """
    for trial in range(8):
        with new_workspace(tmp_path / f"ws{trial}") as ws:
            accounts = Accounts(ws, policy, scrypt=FAST)
            accounts.bootstrap_engineer("eng1", PASSWORD)
            eng1 = accounts.login("eng1", PASSWORD)
            start = threading.Barrier(6)

            def ask(
                i: int, accounts: Accounts = accounts, eng1: Session = eng1, start: threading.Barrier = start
            ) -> str:
                start.wait()
                try:
                    return accounts.request_add(f"eng{i + 2}", ["engineer"], by=eng1, password=FIRST).state
                except UserError as exc:
                    assert "set by the engineer who confirms it" in str(exc)
                    return "refused"

            with ThreadPoolExecutor(6) as pool:
                states = list(pool.map(ask, range(6)))
            assert sorted(states) == ["confirmed"] + ["refused"] * 5, trial
            assert len(accounts.engineers()) == 2
            assert ws.query("SELECT state FROM user_requests") == [("confirmed",)], trial


def test_a_lapsed_request_cannot_be_confirmed(accounts: Accounts, clock: FakeClock, ws: Workspace) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    stale = accounts.request_reset("ivan", by=eng1)
    clock.advance(hours=1)
    timely = accounts.request_add("bob", ["rfr_user"], by=accounts.login("eng1", PASSWORD))
    clock.advance(hours=23, seconds=1)  # the first is 24 h 1 s old: past accounts.request_valid_hours
    eng2 = accounts.login("eng2", PASSWORD)
    for typed in (TEMPORARY, None):  # refused for lapsing, not for a missing password
        refuses(
            lambda: accounts.confirm(stale.id, by=eng2, password=typed),  # noqa: B023 - called at once
            UserError,
            f"account change request {stale.id} is lapsed, not pending: ask again",
        )
    assert accounts.request(stale.id).state == "lapsed"
    refuses(lambda: accounts.login("ivan", TEMPORARY), AuthenticationError, "wrong username or password")
    accounts.login("ivan", PASSWORD)
    lapsed = next(e for e in log(ws) if e.action == "user.request_lapsed")
    assert (lapsed.actor, lapsed.subjects, lapsed.details) == ("system", {"user": "ivan"}, {"request": stale.id})
    assert [r.id for r in accounts.pending_requests(eng2)] == [timely.id]
    accounts.confirm(timely.id, by=eng2, password=FIRST)  # 23 h 1 s old: still in time
    assert accounts.get_user("bob").must_change_password


def test_requests_lapse_once_when_several_threads_sweep(accounts: Accounts, clock: FakeClock, ws: Workspace) -> None:
    """The sweep's count is what it lapsed: the rebuilt code returned every stale request it had seen,
    so two threads sweeping at once (the application's sweeper and a command) both counted the same
    requests (in about a third of the rounds).
    """
    for round_ in range(8):
        eng1 = accounts.login("eng1", PASSWORD)
        for person in ("bob", "carl", "dave"):
            accounts.request_add(f"{person}{round_}", ["rfr_user"], by=eng1)
        clock.advance(hours=25)
        before = head(ws)
        start = threading.Barrier(6)

        def sweep(_: int, start: threading.Barrier = start) -> int:
            start.wait()
            return accounts.lapse_requests()

        with ThreadPoolExecutor(6) as pool:
            assert sum(pool.map(sweep, range(6))) == 3, round_
        assert actions(ws, before) == ["user.request_lapsed"] * 3


def test_a_request_is_confirmed_once_and_a_cancelled_one_never(accounts: Accounts) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    eng2 = accounts.login("eng2", PASSWORD)
    request = accounts.request_add("bob", ["rfr_user"], by=eng1)
    accounts.confirm(request.id, by=eng2, password=FIRST)
    for typed in (OTHER, None):
        refuses(
            lambda: accounts.confirm(request.id, by=eng2, password=typed),  # noqa: B023 - called at once
            UserError,
            f"account change request {request.id} is confirmed, not pending: ask again",
        )
    accounts.login("bob", FIRST)  # a second confirmation did not set another password
    cancelled = accounts.request_reset("ivan", by=eng1)
    refuses(
        lambda: accounts.cancel(cancelled.id, by=eng2, reason="  "),
        UserError,
        "cancelling an account change needs a reason (--reason TEXT)",
    )
    assert accounts.cancel(cancelled.id, by=eng2, reason="ivan never asked").state == "cancelled"
    with pytest.raises(UserError, match="is cancelled, not pending"):
        accounts.confirm(cancelled.id, by=eng2, password=TEMPORARY)
    refuses(
        lambda: accounts.confirm(999, by=eng2, password=TEMPORARY),
        UserError,
        "no account change request 999 on this terminal",
    )
    refuses(lambda: accounts.login("ivan", TEMPORARY), AuthenticationError, "wrong username or password")
    accounts.login("ivan", PASSWORD)


def test_a_new_account_must_change_its_password_first(accounts: Accounts) -> None:
    add(accounts, "bob", ["approver"], rank="Inspector", change=False)
    bob = accounts.login("bob", FIRST)
    with pytest.raises(PasswordChangeRequired):
        accounts.require_role(bob, Role.APPROVER)
    with pytest.raises(PasswordRejected, match="must differ from the current one"):
        accounts.change_password("bob", FIRST, FIRST)
    accounts.change_password("bob", FIRST, OTHER)
    assert accounts.require_role(bob, Role.APPROVER).username == "bob"  # the session goes on once it is changed
    assert not accounts.get_user("bob").must_change_password
    refuses(lambda: accounts.login("bob", FIRST), AuthenticationError, "wrong username or password")


# Issue 14: nobody acts as nobody. The old code took ``by=WORKSPACE_ADMIN`` on every account
# change: whoever held the workspace key could add an approver, reset a password or unlock an
# account with no named engineer (recorded as ``workspace-admin``), and the command line did so
# whenever ``--as`` was left out. Now only ``bootstrap_engineer`` acts without a signed-in engineer,
# and only on a workspace with no users.

# Every public method of Accounts, by what it needs. A new method must be placed here, so none can
# change accounts without someone signed in. Those taking ``by`` (a signed-in session) need an
# engineer, except ``directory`` (or an auditor) and ``require_any`` (whichever roles it is given).
CHANGES_BY_AN_ENGINEER = {
    "adds_at_once",
    "request_add",
    "request_roles",
    "request_reset",
    "confirmable",
    "confirm",
    "require_any",
    "cancel",
    "lock_user",
    "unlock_user",
    "directory",
    "pending_requests",
    "plan_central_accounts",
    "apply_central_accounts",
}
WITHOUT_AN_ENGINEER = {
    "bootstrap_engineer": "the first engineer, only on a workspace with no users",
    "login": "one's own password",
    "change_password": "one's own current password",
    "reauthenticate": "one's own session and password",
    "logout": "ends one's own session",
    "lapse_requests": "only marks old requests lapsed (actor system): grants nothing",
    "check": "reads",
    "require_role": "reads",
    "require_reauthentication": "spends one's own password entry; writes nothing",
    "is_signed_in": "reads",
    "get_user": "reads",
    "list_users": "reads",
    "has_users": "reads",
    "engineers": "reads",
    "request": "reads",
}


def test_nobody_path_is_gone() -> None:
    assert not hasattr(users, "WORKSPACE_ADMIN") and not hasattr(users, "WorkspaceAdmin")
    public = {
        name
        for name, _ in inspect.getmembers(Accounts, inspect.isfunction)
        if not name.startswith("_") and name != "policy"
    }
    taking_by = {name for name in public if "by" in inspect.signature(getattr(Accounts, name)).parameters}
    assert taking_by == CHANGES_BY_AN_ENGINEER
    assert public - taking_by == set(WITHOUT_AN_ENGINEER)
    for name in taking_by:
        annotation = inspect.signature(getattr(Accounts, name)).parameters["by"].annotation
        assert annotation in ("Session", Session), f"{name}: 'by' must be a signed-in session, not {annotation}"


def central_package(ws: Workspace, accounts: Accounts, by: Session) -> object:
    """An (empty) accounts package from the central unit applied by ``by``, in its own transaction."""
    with ws.transaction() as conn:
        return accounts.apply_central_accounts(conn, [], [], package="accounts#1", by=by)


def test_nobody_changes_accounts_without_a_signed_in_engineer(
    accounts: Accounts, ws: Workspace, clock: FakeClock
) -> None:
    eng1 = accounts.login("eng1", PASSWORD)
    pending = accounts.request_reset("alice", by=eng1)
    add(accounts, "eng3", ["engineer"])
    add(accounts, "eng4", ["engineer"], change=False)
    eng3 = accounts.login("eng3", PASSWORD)
    accounts.lock_user("eng3", by=eng1, reason="suspended")
    signed_out = accounts.login("eng2", PASSWORD)
    accounts.logout(signed_out)
    callers: list[tuple[str, Session, type[RfrError]]] = [
        ("forged", Session(id="0" * 32, username="eng1", started_at=clock()), SessionExpired),
        ("signed out", signed_out, SessionExpired),
        ("not an engineer", accounts.login("alice", PASSWORD), PermissionRefused),
        ("approver", accounts.login("ivan", PASSWORD), PermissionRefused),
        ("must change password", accounts.login("eng4", FIRST), PasswordChangeRequired),
        ("locked engineer", eng3, SessionExpired),
    ]
    calls: dict[str, Callable[[Session], object]] = {
        "adds_at_once": lambda by: accounts.adds_at_once(["engineer"], by=by),
        "request_add": lambda by: accounts.request_add("bob", ["approver"], rank="Inspector", by=by),
        "request_roles": lambda by: accounts.request_roles("alice", ["approver"], rank="Inspector", by=by),
        "request_reset": lambda by: accounts.request_reset("ivan", by=by),
        "confirmable": lambda by: accounts.confirmable(pending.id, by=by),
        "confirm": lambda by: accounts.confirm(pending.id, by=by, password=TEMPORARY),
        "require_any": lambda by: accounts.require_any(by, "engineering", Role.ENGINEER),
        "cancel": lambda by: accounts.cancel(pending.id, by=by, reason="refused"),
        "lock_user": lambda by: accounts.lock_user("ivan", by=by, reason="x"),
        "unlock_user": lambda by: accounts.unlock_user("eng3", by=by),
        "directory": lambda by: accounts.directory(by),
        "pending_requests": lambda by: accounts.pending_requests(by),
        "plan_central_accounts": lambda by: accounts.plan_central_accounts([], [], by=by),
        "apply_central_accounts": lambda by: central_package(ws, accounts, by),
    }
    assert set(calls) == CHANGES_BY_AN_ENGINEER
    before, seq = account_tables(ws), head(ws)
    for who, session, error in callers:
        for name, call in calls.items():
            with pytest.raises(error):
                call(session)
            assert account_tables(ws) == before, (who, name)
    assert head(ws) == seq, "a refused change writes nothing"
    eng2 = accounts.login("eng2", PASSWORD)
    assert accounts.confirmable(pending.id, by=eng2) == accounts.request(pending.id)
    accounts.confirm(pending.id, by=eng2, password=TEMPORARY)  # a signed-in second engineer can


def test_bootstrap_only_on_a_workspace_with_no_users(bare: Accounts, ws: Workspace) -> None:
    assert not bare.has_users()
    before = head(ws)
    first = bare.bootstrap_engineer("eng1", PASSWORD, display_name="First Engineer")
    assert first.roles == {Role.ENGINEER} and not first.must_change_password and first.rank is None
    event = log(ws, before)[-1]
    assert (event.actor, event.action, event.subjects) == ("system", "user.bootstrap", {"user": "eng1"})
    assert event.details == {"roles": ["engineer"], "note": "first user, no engineer signed in"}
    refusal = (
        "adding a user without a signed-in engineer is only possible on a terminal with no users: "
        "sign in as an engineer (--as ENGINEER)"
    )
    refuses(lambda: bare.bootstrap_engineer("eng9", PASSWORD), PermissionRefused, refusal)
    # Not even when the only user is no engineer, or every engineer is locked.
    eng1 = bare.login("eng1", PASSWORD)
    bare.request_add("eng2", ["engineer"], by=eng1, password=FIRST)
    bare.lock_user("eng2", by=eng1, reason="x")
    with ws.transaction() as conn:
        conn.execute("UPDATE users SET locked_by_admin = 1")
    refuses(lambda: bare.bootstrap_engineer("rescuer", PASSWORD), PermissionRefused, refusal)
    assert [u.username for u in bare.list_users()] == ["eng1", "eng2"]
    assert actions(ws, before).count("user.bootstrap") == 1


def test_bootstrap_is_once_even_at_once(bare: Accounts) -> None:
    """Two installers racing on an empty workspace: one first engineer."""
    start = threading.Barrier(4)

    def boot(name: str) -> str:
        start.wait()
        try:
            bare.bootstrap_engineer(name, PASSWORD)
        except PermissionRefused:
            return "refused"
        return "added"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(boot, ["enga", "engb", "engc", "engd"]))
    assert sorted(outcomes) == ["added"] + ["refused"] * 3
    assert len(bare.list_users()) == 1


# Issue 14: "A wrong password for an unknown username takes about 0.3 s longer than for a real one
# (two scrypt runs)." The old code hashed a decoy password the first time an unknown username came
# (``hash_password``, one scrypt) and then checked against it (a second): every command is a new
# process, so every unknown username ran scrypt twice, a wrong password once.


@pytest.fixture
def scrypt_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Every scrypt evaluation from now on, by its cost (n, r, p)."""
    runs: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kwargs: Any) -> bytes:
        runs.append((kwargs["n"], kwargs["r"], kwargs["p"]))
        return real(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)  # the module users.py calls
    return runs


def test_each_sign_in_runs_scrypt_exactly_once(
    accounts: Accounts, ws: Workspace, policy: Policy, scrypt_runs: list[tuple[int, int, int]]
) -> None:
    scrypt_runs.clear()
    fresh = Accounts(ws, policy, scrypt=FAST)  # as every command opens the terminal
    assert scrypt_runs == [], "opening runs no scrypt"
    attempts = [
        ("unknown username", "mallory", PASSWORD),
        ("wrong password", "alice", WRONG),
        ("right password", "alice", PASSWORD),
        ("unknown username again", "nobody", WRONG),
        ("reserved name", "system", PASSWORD),
    ]
    for what, username, password in attempts:
        scrypt_runs.clear()
        try:
            fresh.login(username, password)
        except AuthenticationError:
            pass
        assert scrypt_runs == [(FAST.n, FAST.r, FAST.p)], what  # one run, at the same cost


def test_every_password_check_runs_scrypt_exactly_once(
    accounts: Accounts, scrypt_runs: list[tuple[int, int, int]]
) -> None:
    ivan = accounts.login("ivan", PASSWORD)
    eng1 = accounts.login("eng1", PASSWORD)
    accounts.lock_user("alice", by=eng1, reason="locked for the test")
    checks: list[tuple[str, Callable[[], object]]] = [
        ("re-authentication, right", lambda: accounts.reauthenticate(ivan, PASSWORD, ReauthPurpose.APPROVE)),
        ("re-authentication, wrong", lambda: accounts.reauthenticate(ivan, WRONG, ReauthPurpose.APPROVE)),
        ("locked account, right password", lambda: accounts.login("alice", PASSWORD)),
        ("password change, unknown user", lambda: accounts.change_password("mallory", PASSWORD, OTHER)),
    ]
    for what, check in checks:
        scrypt_runs.clear()
        try:
            check()
        except AuthenticationError:
            pass
        assert scrypt_runs == [(FAST.n, FAST.r, FAST.p)], what


def test_a_first_password_is_hashed_at_confirmation_never_at_request(
    bare: Accounts, scrypt_runs: list[tuple[int, int, int]]
) -> None:
    """scrypt runs where a password is set (confirming, or adding the second engineer at once), once.

    Asking runs none (no password is taken), and a refused request or confirmation runs none: it is
    refused before the password is hashed. (The code before hashed the asker's password at the request.)
    """
    one = [(FAST.n, FAST.r, FAST.p)]

    def runs(step: Callable[[], object]) -> list[tuple[int, int, int]]:
        scrypt_runs.clear()
        try:
            step()
        except RfrError:
            pass
        return list(scrypt_runs)

    bare.bootstrap_engineer("eng1", PASSWORD)
    eng1 = bare.login("eng1", PASSWORD)
    assert runs(lambda: bare.adds_at_once(["engineer"], by=eng1)) == []
    assert runs(lambda: bare.request_add("eng2", ["engineer"], by=eng1)) == [], "at once, without a password"
    assert runs(lambda: bare.request_add("eng2", ["engineer"], by=eng1, password=FIRST)) == one, "at once"
    assert runs(lambda: bare.change_password("eng2", FIRST, PASSWORD)) == one * 2, "check the current, hash the new"
    eng2 = bare.login("eng2", PASSWORD)

    add_bob: list[AccountRequest] = []
    assert runs(lambda: add_bob.append(bare.request_add("bob", ["rfr_user"], by=eng1))) == [], "ask to add"
    assert runs(lambda: bare.request_add("dave", ["rfr_user"], by=eng1, password=FIRST)) == [], "ask with one"
    request = add_bob[0].id
    assert runs(lambda: bare.confirm(request, by=eng1, password=FIRST)) == [], "confirm one's own"
    assert runs(lambda: bare.confirm(request, by=eng2)) == [], "confirm an add without a password"
    assert runs(lambda: bare.confirm(request, by=eng2, password="short")) == [], "confirm with one too short"
    assert runs(lambda: bare.confirm(request, by=eng2, password=FIRST)) == one, "confirm an add"
    assert runs(lambda: bare.confirm(request, by=eng2, password=FIRST)) == [], "confirm it again"

    asked: list[AccountRequest] = []
    assert runs(lambda: asked.append(bare.request_reset("bob", by=eng1))) == [], "ask to reset"
    assert runs(lambda: asked.append(bare.request_roles("bob", ["auditor"], rank=None, by=eng1))) == [], "ask roles"
    reset, roles = (r.id for r in asked)
    assert runs(lambda: bare.confirm(roles, by=eng2, password=FIRST)) == [], "confirm roles with a password"
    assert runs(lambda: bare.confirm(roles, by=eng2)) == [], "confirm roles"
    assert runs(lambda: bare.confirm(reset, by=eng2, password=TEMPORARY)) == one, "confirm a reset"
    assert bare.get_user("bob").roles == {Role.AUDITOR}
    assert bare.request(reset).state == bare.request(roles).state == "confirmed"
    assert "dave" not in {u.username for u in bare.list_users()}


# Issue 14: "Signing in on one thread while another holds a workspace transaction raises
# RuntimeError (the accounts code checks conn.in_transaction before taking the workspace lock)."
# The old ``_write`` raised "account changes commit on their own: finish the open transaction first"
# whenever the shared connection was inside anyone's transaction.


def test_sign_in_waits_for_another_threads_transaction(accounts: Accounts, ws: Workspace) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ws.transaction() as conn:
            conn.execute("UPDATE users SET display_name = 'PC A. Adams' WHERE username = 'alice'")
            held.set()
            release.wait(10)

    with ThreadPoolExecutor(3) as pool:
        holder = pool.submit(hold)
        assert held.wait(10)
        signing_in = pool.submit(accounts.login, "alice", PASSWORD)
        failing = pool.submit(accounts.login, "ivan", WRONG)
        with pytest.raises(TimeoutError):
            signing_in.result(timeout=0.2)  # it waits for the transaction to end (before: RuntimeError at once)
        release.set()
        holder.result(10)
        session = signing_in.result(10)
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            failing.result(10)
    assert accounts.check(session).display_name == "PC A. Adams"
    assert accounts.get_user("ivan").failed_attempts == 1
    assert verifies(ws)


def test_a_failed_sign_in_counts_even_when_another_threads_transaction_rolls_back(
    accounts: Accounts, ws: Workspace
) -> None:
    held, release = threading.Event(), threading.Event()

    def hold_then_fail() -> None:
        with ws.transaction() as conn:
            conn.execute("UPDATE users SET failed_attempts = 99 WHERE username = 'alice'")
            held.set()
            release.wait(10)
            raise ValueError("the other thread's work fails")

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(hold_then_fail)
        assert held.wait(10)
        failing = pool.submit(accounts.login, "alice", WRONG)
        release.set()
        with pytest.raises(ValueError):
            holder.result(10)
        with pytest.raises(AuthenticationError):
            failing.result(10)
    assert accounts.get_user("alice").failed_attempts == 1


def test_concurrent_failed_sign_ins_are_all_counted(accounts: Accounts, ws: Workspace, policy: Policy) -> None:
    """Twelve wrong passwords at once: four refused, the fifth locks, the rest find it locked; none lost."""
    limit = policy.lockout.max_failed_attempts
    before = head(ws)
    start = threading.Barrier(12)

    def guess(_: int) -> str:
        start.wait()
        try:
            accounts.login("alice", WRONG)
        except AccountLocked as exc:
            return "locks" if "is now locked" in str(exc) else "locked"
        except AuthenticationError:
            return "refused"
        return "in"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(guess, range(12)))
    assert sorted(outcomes) == sorted(["refused"] * (limit - 1) + ["locks"] + ["locked"] * (12 - limit))
    assert accounts.get_user("alice").is_locked(ws.now())
    events = log(ws, before)
    reasons = [e.details.get("reason") for e in events if e.action == "user.sign_in_refused"]
    assert sorted(reasons, key=str) == sorted(["wrong password"] * (limit - 1) + ["locked out"] * (12 - limit))
    assert [e.details["failed_attempts"] for e in events if e.action == "user.locked_out"] == [limit]
    assert verifies(ws)


def test_concurrent_sign_ins_of_several_people_keep_separate_counts(
    accounts: Accounts, ws: Workspace, policy: Policy
) -> None:
    add(accounts, "bob", ["rfr_user"])
    start = threading.Barrier(10)
    people = ["alice", "ivan", "bob"]
    attempts = [(name, WRONG) for name in people for _ in range(3)] + [("eng1", PASSWORD)]

    def attempt(pair: tuple[str, str]) -> bool:
        start.wait()
        try:
            accounts.check(accounts.login(*pair))
        except AuthenticationError:
            return False
        return True

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(attempt, attempts))
    assert results == [False] * 9 + [True]
    assert {name: accounts.get_user(name).failed_attempts for name in people} == dict.fromkeys(people, 3)
    assert accounts.get_user("eng1").failed_attempts == 0
    # Two more each: exactly the policy's limit, so each is now locked.
    assert policy.lockout.max_failed_attempts == 5

    def guess(name: str) -> None:
        with pytest.raises(AuthenticationError):
            accounts.login(name, WRONG)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(guess, people * 2))
    assert all(accounts.get_user(name).is_locked(ws.now()) for name in people)


# Issue 14 through the real command line, in-process: ``rfr user ...`` on a terminal's workspace,
# passwords only from RFR_PASSWORD / RFR_NEW_PASSWORD, each refusal one line naming its rule.
# The old command line let the key holder add or unlock accounts without --as (as workspace-admin)
# and reset any password at once.

ENG1, ENG2, IVAN = "first engineer passphrase", "second engineer passphrase", "the approver passphrase"
SECRET_ENV = ("RFR_PASSWORD", "RFR_NEW_PASSWORD")


def json_of(out: str) -> dict[str, Any]:
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


class Cli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], directory: Path) -> None:
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.directory = directory

    def __call__(
        self, *argv: str, password: str | None = None, new_password: str | None = None
    ) -> tuple[int, str, str]:
        """Run ``rfr ARGV``; the passwords given must be gone from the environment afterwards."""
        for name, value in zip(SECRET_ENV, (password, new_password), strict=True):
            if value is not None:
                self.monkeypatch.setenv(name, value)
            else:
                self.monkeypatch.delenv(name, raising=False)
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        for name in SECRET_ENV:
            assert name not in os.environ, f"{name} was left in the environment by rfr {' '.join(argv)}"
        return code, out, err

    def refused(self, message: str, *argv: str, code: int = 1, **secrets: str) -> None:
        """``rfr ARGV`` fails with exactly one line on stderr, naming the rule, and prints nothing else."""
        got, out, err = self(*argv, **secrets)
        assert (got, out, err) == (code, "", f"rfr: {message}\n")


@pytest.fixture
def rfr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The command line on a new terminal (no users yet), its paths in RFR_WORKSPACE and friends."""
    directory = tmp_path / "ws"
    make_terminal(directory).close()
    config = terminal_config(directory)
    for name in ("RFR_CONFIG", "RFR_PASSPHRASE", "RFR_POLICY", "RFR_TERMINAL_NAME", "RFR_DEVICE", "RFR_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RFR_WORKSPACE", str(config.workspace))
    monkeypatch.setenv("RFR_KEY_FILE", str(config.key_file))
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(config.audit_key_file))
    monkeypatch.setattr("engine.cli.terminal.SCRYPT", FAST)
    monkeypatch.setattr("engine.cli.terminal.FACES", lambda config: synthetic_faces())
    return Cli(monkeypatch, capsys, directory)


def two_engineers(rfr: Cli) -> None:
    assert rfr("user", "add", "eng1", "--role", "engineer", new_password=ENG1)[0] == 0
    assert rfr("user", "add", "eng2", "--role", "engineer", "--as", "eng1", password=ENG1, new_password=FIRST)[0] == 0
    assert rfr("user", "passwd", "eng2", password=FIRST, new_password=ENG2)[0] == 0


NO_NEW_PASSWORD = "no password: set RFR_NEW_PASSWORD, or run from a terminal to be asked"


def request_of(out: str) -> str:
    """The request number in ``rfr user add|roles|reset --json`` output."""
    return str(json_of(out)["request"])


def test_cli_bootstrap_second_engineer_add_confirm_and_forced_change(rfr: Cli) -> None:
    code, out, err = rfr("user", "add", "eng1", "--role", "engineer", new_password=ENG1)
    assert (code, out, err) == (0, "Added eng1, the first engineer of this terminal.\n", "")
    # The second engineer is added at once, so its first password is asked for (and here, not given).
    rfr.refused(NO_NEW_PASSWORD, *("user", "add", "eng2", "--role", "engineer", "--as", "eng1"), code=2, password=ENG1)
    code, out, err = rfr(
        "user", "add", "eng2", "--role", "engineer", "--as", "eng1", "--json", password=ENG1, new_password=FIRST
    )
    assert code == 0 and err == ""
    added = json_of(out)
    assert (added["kind"], added["username"], added["state"], added["decided_by"]) == ("add", "eng2", "confirmed", None)
    rfr.refused(
        "eng2 must choose a new password before doing anything else (it was set by an engineer)",
        *("user", "requests", "--as", "eng2"),
        password=FIRST,
    )
    assert rfr("user", "passwd", "eng2", password=FIRST, new_password=ENG2) == (0, "Password of eng2 changed.\n", "")

    # Any other account: the asking engineer gives no password (none is read).
    code, out, _ = rfr(
        *("user", "add", "ivan", "--role", "approver", "--rank", "Inspector", "--as", "eng1", "--json"), password=ENG1
    )
    asked = json_of(out)
    assert code == 0 and (asked["state"], asked["requested_by"], asked["roles"]) == ("pending", "eng1", ["approver"])
    request = str(asked["request"])
    rfr.refused("wrong username or password", "user", "passwd", "ivan", password=FIRST, new_password=IVAN)
    code, out, _ = rfr("user", "requests", "--as", "eng2", "--json", password=ENG2)
    assert code == 0 and [r["request"] for r in json_of(out)["requests"]] == [asked["request"]]
    rfr.refused(  # refused before any first password is asked for
        "confirmation refused: eng1 asked for this change; a second engineer must confirm it",
        *("user", "confirm", request, "--as", "eng1"),
        password=ENG1,
    )
    # The confirming engineer sets the first password, or nothing happens.
    rfr.refused(NO_NEW_PASSWORD, "user", "confirm", request, "--as", "eng2", code=2, password=ENG2)
    rfr.refused(
        "password too short: use at least 12 characters",
        *("user", "confirm", request, "--as", "eng2"),
        password=ENG2,
        new_password="short",
    )
    code, out, err = rfr("user", "confirm", request, "--as", "eng2", password=ENG2, new_password=FIRST)
    assert (code, err) == (0, "") and out == f"Confirmed request {request}: add ivan (Approver; rank Inspector).\n"

    rfr.refused(
        "ivan must choose a new password before doing anything else (it was set by an engineer)",
        *("user", "list", "--as", "ivan"),
        password=FIRST,
    )
    assert rfr("user", "passwd", "ivan", password=FIRST, new_password=IVAN)[0] == 0
    rfr.refused(
        "listing users refused: it needs the Engineer or Auditor role; ivan holds neither",
        *("user", "list", "--as", "ivan"),
        password=IVAN,
    )
    code, out, _ = rfr("user", "list", "--as", "eng2", "--json", password=ENG2)
    listed = {u["username"]: u for u in json_of(out)["users"]}
    assert code == 0 and sorted(listed) == ["eng1", "eng2", "ivan"]
    assert (listed["ivan"]["roles"], listed["ivan"]["rank"], listed["ivan"]["must_change_password"]) == (
        ["approver"],
        "Inspector",
        False,
    )

    with reopen(rfr.directory, sweep=False) as terminal, terminal.ws.reading() as conn:
        events = [e for e in audit.events(conn) if e.action.startswith("user.") and e.action != "user.sign_out"]
        assert verifies(terminal.ws)
    changes = [(e.actor, e.action, e.subjects.get("user"), e.details.get("confirmed_by")) for e in events]
    assert [c for c in changes if c[1] not in ("user.sign_in", "user.sign_in_refused", "user.list")] == [
        ("system", "user.bootstrap", "eng1", None),
        ("eng1", "user.add", "eng2", None),
        ("eng2", "user.password_change", "eng2", None),
        ("eng1", "user.request", "ivan", None),
        ("eng1", "user.add", "ivan", "eng2"),
        ("ivan", "user.password_change", "ivan", None),
    ]


def test_cli_reset_takes_two_engineers_and_the_asker_never_knows_the_password(rfr: Cli) -> None:
    two_engineers(rfr)
    code, out, _ = rfr(
        *("user", "add", "ivan", "--role", "approver", "--rank", "Inspector", "--as", "eng1", "--json"), password=ENG1
    )
    assert rfr("user", "confirm", request_of(out), "--as", "eng2", password=ENG2, new_password=FIRST)[0] == 0
    assert rfr("user", "passwd", "ivan", password=FIRST, new_password=IVAN)[0] == 0

    # The asker slips a password into RFR_NEW_PASSWORD: it is not read, and never becomes ivan's.
    code, out, err = rfr("user", "reset", "ivan", "--as", "eng1", password=ENG1, new_password=TAKEOVER)
    request = out.split("request ")[1].split(" ")[0]
    assert code == 0 and err == ""
    assert out == f"Asked to reset the password of ivan: request {request} waits for a second engineer: " + (
        f"rfr user confirm {request} --as ENGINEER\n"
    )
    # Before confirmation the asker's password opens nothing; ivan's own still signs him in.
    rfr.refused("wrong username or password", "user", "passwd", "ivan", password=TAKEOVER, new_password=OTHER)
    rfr.refused(
        "listing users refused: it needs the Engineer or Auditor role; ivan holds neither",
        *("user", "list", "--as", "ivan"),
        password=IVAN,
    )
    own_request = "confirmation refused: eng1 asked for this change; a second engineer must confirm it"
    rfr.refused(own_request, "user", "confirm", request, "--as", "eng1", password=ENG1)  # asked for no password
    rfr.refused(own_request, "user", "confirm", request, "--as", "eng1", password=ENG1, new_password=TAKEOVER)
    rfr.refused(NO_NEW_PASSWORD, "user", "confirm", request, "--as", "eng2", code=2, password=ENG2)
    code, out, err = rfr("user", "confirm", request, "--as", "eng2", password=ENG2, new_password=TEMPORARY)
    assert (code, out, err) == (0, f"Confirmed request {request}: reset the password of ivan.\n", "")
    # Nothing the asker knows opens ivan's account: not his old password, not the one they slipped in.
    for guess in (IVAN, TAKEOVER):
        rfr.refused("wrong username or password", "user", "list", "--as", "ivan", password=guess)
    rfr.refused(
        "ivan must choose a new password before doing anything else (it was set by an engineer)",
        *("user", "list", "--as", "ivan"),
        password=TEMPORARY,
    )
    assert rfr("user", "passwd", "ivan", password=TEMPORARY, new_password=OTHER)[0] == 0
    rfr.refused("wrong username or password", "user", "list", "--as", "ivan", password=TEMPORARY)
    rfr.refused(
        "listing users refused: it needs the Engineer or Auditor role; ivan holds neither",
        *("user", "list", "--as", "ivan"),
        password=OTHER,
    )


def test_cli_a_roles_change_is_confirmed_without_a_password(rfr: Cli) -> None:
    two_engineers(rfr)
    code, out, _ = rfr("user", "add", "bob", "--role", "rfr_user", "--as", "eng1", "--json", password=ENG1)
    assert rfr("user", "confirm", request_of(out), "--as", "eng2", password=ENG2, new_password=FIRST)[0] == 0
    assert rfr("user", "passwd", "bob", password=FIRST, new_password=OTHER)[0] == 0
    code, out, _ = rfr(
        *("user", "roles", "bob", "--role", "auditor", "--rank", "Sergeant", "--as", "eng1", "--json"), password=ENG1
    )
    request = request_of(out)
    assert code == 0
    code, out, err = rfr("user", "confirm", request, "--as", "eng2", password=ENG2)  # no RFR_NEW_PASSWORD
    assert (code, err) == (0, "")
    assert out == f"Confirmed request {request}: set the roles of bob to Auditor (rank Sergeant).\n"
    code, out, _ = rfr("user", "list", "--as", "bob", "--json", password=OTHER)  # his own password, now an auditor
    bob = {u["username"]: u for u in json_of(out)["users"]}["bob"]
    assert code == 0 and (bob["roles"], bob["rank"], bob["must_change_password"]) == (["auditor"], "Sergeant", False)


def test_cli_refusals_are_one_line_naming_the_rule(rfr: Cli) -> None:
    two_engineers(rfr)
    own = "{} refused: nobody changes their own account this way (change your own password with 'rfr user passwd')"
    rfr.refused(
        "adding a user without a signed-in engineer is only possible on a terminal with no users: "
        "sign in as an engineer (--as ENGINEER)",
        *("user", "add", "mallory", "--role", "engineer"),
        new_password=FIRST,
    )
    rfr.refused(
        own.format("changing roles"),
        *("user", "roles", "eng1", "--role", "engineer", "--role", "approver", "--rank", "Inspector", "--as", "eng1"),
        password=ENG1,
    )
    rfr.refused(own.format("resetting a password"), "user", "reset", "eng1", "--as", "eng1", password=ENG1)
    code, out, _ = rfr("user", "reset", "eng2", "--as", "eng1", "--json", password=ENG1)
    request = request_of(out)
    rfr.refused(own.format("confirming an account change"), "user", "confirm", request, "--as", "eng2", password=ENG2)
    rfr.refused(
        own.format("confirming an account change"),
        *("user", "confirm", request, "--as", "eng2"),
        password=ENG2,
        new_password=TEMPORARY,
    )
    rfr.refused(own.format("unlocking an account"), "user", "unlock", "eng1", "--as", "eng1", password=ENG1)
    assert rfr("user", "cancel", request, "--as", "eng2", "--reason", "eng2 did not ask", password=ENG2)[0] == 0
    rfr.refused(
        f"account change request {request} is cancelled, not pending: ask again",
        *("user", "confirm", request, "--as", "eng1"),
        password=ENG1,
    )
    rfr.refused(
        "no account change request 999 on this terminal", "user", "confirm", "999", "--as", "eng1", password=ENG1
    )
    rfr.refused("wrong username or password", "user", "list", "--as", "eng1", password=WRONG)
    rfr.refused("wrong username or password", "user", "list", "--as", "mallory", password=ENG1)
    # The key holder can no longer unlock (or do anything) as nobody.
    rfr.refused(
        "user unlock: the following arguments are required: --as (see 'rfr user unlock --help')",
        *("user", "unlock", "eng1"),
        code=2,
    )
    # Passwords never come from argv: not when asking, not when confirming.
    for argv in (
        ("user", "add", "bob", "--role", "rfr_user", "--as", "eng1", "--password", "hunter2hunter2"),
        ("user", "reset", "eng2", "--as", "eng1", "--password", "hunter2hunter2"),
        ("user", "confirm", request, "--as", "eng2", "--password", "hunter2hunter2"),
    ):
        code, out, err = rfr(*argv)
        assert (code, out, err.count("\n")) == (2, "", 1) and "unrecognized arguments: --password" in err


def test_cli_refuses_a_first_user_who_is_not_an_engineer(rfr: Cli) -> None:
    rfr.refused("wrong username or password", "user", "list", "--as", "eng1", password=ENG1)
    rfr.refused(
        "adding a user refused: without --as, only a terminal's first engineer can be added (--role engineer); "
        "every other account is asked for by a signed-in engineer",
        *("user", "add", "ivan", "--role", "approver", "--rank", "Inspector"),
        new_password=FIRST,
    )
    with reopen(rfr.directory, sweep=False) as terminal:
        assert not terminal.accounts.has_users()
    assert rfr("user", "add", "eng1", "--role", "engineer", new_password=ENG1)[0] == 0


def test_cli_a_lapsed_request_cannot_be_confirmed(rfr: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    two_engineers(rfr)
    code, out, _ = rfr("user", "reset", "eng2", "--as", "eng1", "--json", password=ENG1)
    add_code, add_out, _ = rfr("user", "add", "bob", "--role", "rfr_user", "--as", "eng1", "--json", password=ENG1)
    assert code == add_code == 0
    request = request_of(add_out)
    later = datetime.now(UTC) + timedelta(hours=24, minutes=1)
    monkeypatch.setattr("engine.workspace.utc_now", lambda: later)
    # The terminal's sweep lapses both when it opens (said on stderr); the confirmation is then refused,
    # for lapsing (not for a missing first password, which is not even asked for).
    code, out, err = rfr("user", "confirm", request, "--as", "eng2", password=ENG2)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "rfr: 2 account change request(s) lapsed unconfirmed",
        f"rfr: account change request {request} is lapsed, not pending: ask again",
    ]
    rfr.refused(
        f"account change request {request} is lapsed, not pending: ask again",
        *("user", "confirm", request, "--as", "eng2"),
        password=ENG2,
        new_password=FIRST,
    )
    with reopen(rfr.directory, sweep=False) as terminal:
        assert "bob" not in {u.username for u in terminal.accounts.list_users()}
        assert not terminal.accounts.get_user("eng2").must_change_password


def test_cli_takes_passwords_from_the_environment_and_removes_them(rfr: Cli) -> None:
    """The ``Cli`` helper asserts this after every command; here, also that a refused command takes them."""
    two_engineers(rfr)
    code, out, _ = rfr("user", "add", "bob", "--role", "rfr_user", "--as", "eng1", "--json", password=ENG1)
    request = request_of(out)
    rfr.refused(
        "password too short: use at least 12 characters",
        *("user", "confirm", request, "--as", "eng2"),
        password=ENG2,
        new_password="short",
    )
    assert rfr("user", "confirm", request, "--as", "eng2", password=ENG2, new_password=FIRST)[0] == 0
    code, _, err = rfr("user", "list", "--as", "eng1", password=ENG1)
    assert code == 0 and err == ""
    with reopen(rfr.directory, sweep=False) as terminal:
        text = dump(terminal.ws)
    for secret in (ENG1, ENG2, FIRST):
        assert secret not in text and secret.encode().hex() not in text
