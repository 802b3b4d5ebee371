"""Users and sessions: scrypt hashing, password rules, lockout, idle timeout, password change, re-authentication."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlcipher3
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import audit
from engine.errors import (
    AccountLocked,
    AuthenticationError,
    PasswordRejected,
    PermissionRefused,
    ReauthenticationRequired,
    SessionExpired,
    UserError,
)
from engine.policy import Policy, load_default_policy
from engine.security import users
from engine.security.users import (
    WORKSPACE_ADMIN,
    Accounts,
    PasswordHash,
    ReauthPurpose,
    Role,
    ScryptParams,
    Session,
    hash_password,
    verify_password,
)

FAST = ScryptParams(n=2**10, r=8, p=1)  # the stored parameters are honoured, so tests can be quick
PASSWORD = "correct horse battery"
OTHER = "a different passphrase"


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


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    audit.create_schema(connection)
    users.create_schema(connection)
    return connection


@pytest.fixture
def accounts(conn: sqlite3.Connection, policy: Policy, clock: FakeClock) -> Accounts:
    acc = Accounts(conn, policy, clock=clock, scrypt=FAST)
    acc.add_user("alice", PASSWORD, ["rfr_user"], by=WORKSPACE_ADMIN, display_name="PC Alice Adams")
    acc.add_user("ivan", PASSWORD, [Role.APPROVER], rank="Inspector", by=WORKSPACE_ADMIN)
    acc.add_user("eve", PASSWORD, [Role.ENGINEER], by=WORKSPACE_ADMIN)
    return acc


def actions(conn: sqlite3.Connection) -> list[str]:
    return [e.action for e in audit.events(conn)]


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


def test_default_cost_is_owasp_minimum_and_verifies() -> None:
    stored = hash_password(PASSWORD)
    assert (stored.n, stored.r, stored.p) == (2**17, 8, 1)
    assert verify_password(PASSWORD, stored)


def test_unicode_forms_of_one_password_match() -> None:
    stored = hash_password("Caf\u00e9 au lait 2025", FAST)
    assert verify_password("Cafe\u0301 au lait 2025", stored)


@pytest.mark.parametrize("n", [1000, 2**9, 2**21])
def test_absurd_cost_parameters_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        ScryptParams(n=n)
    assert not verify_password(PASSWORD, PasswordHash(n, 8, 1, b"salt" * 4, b"x" * 32))


def test_no_password_is_stored_or_audited_in_clear(accounts: Accounts, conn: sqlite3.Connection) -> None:
    accounts.login("alice", PASSWORD)
    with pytest.raises(AuthenticationError):
        accounts.login("alice", "wrong password guess")
    accounts.change_password("alice", PASSWORD, OTHER)
    dump = "\n".join(conn.iterdump())
    for secret in (PASSWORD, OTHER, "wrong password guess"):
        assert secret not in dump
        assert secret.encode().hex() not in dump.lower()


# Validation


@pytest.mark.parametrize("name", ["A", "a", "Alice", "1alice", "al ice", "alice!", "a" * 33, "", "ålice"])
def test_bad_usernames_are_refused(accounts: Accounts, name: str) -> None:
    with pytest.raises(UserError, match="is not valid: use 2 to 32 lowercase letters"):
        accounts.add_user(name, PASSWORD, ["rfr_user"], by=WORKSPACE_ADMIN)


@pytest.mark.parametrize("name", ["system", "unknown", "workspace-admin"])
def test_reserved_usernames_are_refused(accounts: Accounts, name: str) -> None:
    with pytest.raises(UserError, match="is reserved"):
        accounts.add_user(name, PASSWORD, ["rfr_user"], by=WORKSPACE_ADMIN)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short pass", "password too short: use at least 12 characters"),
        ("my name is bob!", "password must not contain the username"),
        ("MY NAME IS BOB!", "password must not contain the username"),
        ("line one\nline two", "control character"),
        ("x" * 1025, "password too long"),
    ],
)
def test_password_rules(accounts: Accounts, password: str, message: str) -> None:
    with pytest.raises(PasswordRejected, match=message):
        accounts.add_user("bob", password, ["rfr_user"], by=WORKSPACE_ADMIN)
    with pytest.raises(PasswordRejected, match=message.replace("bob", "alice")):
        accounts.change_password("alice", PASSWORD, password.replace("bob", "alice").replace("BOB", "ALICE"))


def test_roles_and_ranks_are_validated(accounts: Accounts) -> None:
    with pytest.raises(UserError, match="unknown role 'admin': use one of rfr_user, tasking_officer"):
        accounts.add_user("bob", PASSWORD, ["admin"], by=WORKSPACE_ADMIN)
    with pytest.raises(UserError, match="needs at least one role"):
        accounts.add_user("bob", PASSWORD, [], by=WORKSPACE_ADMIN)
    with pytest.raises(UserError, match="unknown rank 'Inspecter'"):
        accounts.add_user("bob", PASSWORD, ["rfr_user"], rank="Inspecter", by=WORKSPACE_ADMIN)
    with pytest.raises(UserError, match=r"role approver needs the rank of Inspector or above .* 'Sergeant' is below"):
        accounts.add_user("bob", PASSWORD, ["approver"], rank="Sergeant", by=WORKSPACE_ADMIN)
    with pytest.raises(UserError, match=r"role approver needs .* no rank was given"):
        accounts.add_user("bob", PASSWORD, ["approver"], by=WORKSPACE_ADMIN)
    staff = accounts.add_user(
        "carol", PASSWORD, ["approver", "peer_reviewer"], rank="Police Staff Band C", by=WORKSPACE_ADMIN
    )
    assert staff.roles == {Role.APPROVER, Role.PEER_REVIEWER} and staff.rank == "Police Staff Band C"
    with pytest.raises(UserError, match="already exists"):
        accounts.add_user("carol", PASSWORD, ["rfr_user"], by=WORKSPACE_ADMIN)


def test_the_database_refuses_an_unknown_role(conn: sqlite3.Connection, accounts: Accounts) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO user_roles (username, role) VALUES ('alice', 'superuser')")


def test_user_records(accounts: Accounts, clock: FakeClock) -> None:
    alice = accounts.get_user("alice")
    assert alice.display_name == "PC Alice Adams" and alice.roles == {Role.RFR_USER} and alice.rank is None
    assert [u.username for u in accounts.list_users()] == ["alice", "eve", "ivan"]
    shown = alice.as_dict(clock())
    assert shown["roles"] == ["rfr_user"] and shown["locked"] is False
    assert not any("hash" in key or "salt" in key for key in shown)
    with pytest.raises(UserError, match="no user 'nobody'"):
        accounts.get_user("nobody")


# Sign-in and lockout


def test_login_and_wrong_password(accounts: Accounts, conn: sqlite3.Connection) -> None:
    session = accounts.login("alice", PASSWORD)
    assert session.username == "alice" and session.id not in repr(session)
    assert accounts.check(session).username == "alice"
    with pytest.raises(AuthenticationError, match=r"^wrong username or password$"):
        accounts.login("alice", "not the password")
    with pytest.raises(AuthenticationError, match=r"^wrong username or password$"):
        accounts.login("mallory", PASSWORD)
    assert actions(conn)[-3:] == ["user.sign_in", "user.sign_in_refused", "user.sign_in_refused"]
    refusal = list(audit.events(conn))[-1]
    assert refusal.actor == "unknown" and "mallory" not in str(refusal)


def test_lockout_after_repeated_failures_then_it_expires(accounts: Accounts, clock: FakeClock) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            accounts.login("alice", "not the password")
    with pytest.raises(AccountLocked, match="now locked for 15 minutes after 5 failed attempts"):
        accounts.login("alice", "not the password")
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(AccountLocked, match="locked until 09:15 UTC"):
        accounts.login("alice", PASSWORD)
    clock.advance(seconds=1)
    accounts.login("alice", PASSWORD)
    assert accounts.get_user("alice").failed_attempts == 0


def test_an_expired_lockout_gives_a_fresh_count(accounts: Accounts, clock: FakeClock) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", "not the password")
    clock.advance(minutes=16)
    for _ in range(4):
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            accounts.login("alice", "not the password")
    with pytest.raises(AccountLocked):
        accounts.login("alice", "not the password")


def test_success_resets_the_failure_count(accounts: Accounts) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", "not the password")
    accounts.login("alice", PASSWORD)
    for _ in range(4):
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            accounts.login("alice", "not the password")


def test_engineer_unlocks_and_others_cannot(accounts: Accounts, conn: sqlite3.Connection) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", "not the password")
    ivan = accounts.login("ivan", PASSWORD)
    with pytest.raises(PermissionRefused, match="managing users needs the Engineer role; ivan lacks it"):
        accounts.unlock_user("alice", by=ivan)
    eve = accounts.login("eve", PASSWORD)
    assert not accounts.unlock_user("alice", by=eve).is_locked(datetime.now(UTC))
    accounts.login("alice", PASSWORD)
    unlock = next(e for e in audit.events(conn) if e.action == "user.unlock")
    assert unlock.actor == "eve" and unlock.subjects == {"user": "alice"}


def test_engineer_lock_ends_sessions_until_unlocked(accounts: Accounts) -> None:
    alice = accounts.login("alice", PASSWORD)
    accounts.lock_user("alice", by=WORKSPACE_ADMIN, reason="left the force")
    with pytest.raises(SessionExpired):
        accounts.check(alice)
    with pytest.raises(AccountLocked, match="account 'alice' is locked; ask an engineer to unlock it"):
        accounts.login("alice", PASSWORD)
    accounts.unlock_user("alice", by=WORKSPACE_ADMIN)
    accounts.login("alice", PASSWORD)


def test_a_locked_out_user_loses_a_live_session(
    accounts: Accounts, conn: sqlite3.Connection, policy: Policy, clock: FakeClock
) -> None:
    """Failures elsewhere (another terminal, a guesser) lock the account and end its session at the next action."""
    alice = accounts.login("alice", PASSWORD)
    other = Accounts(conn, policy, clock=clock, scrypt=FAST)
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            other.login("alice", "not the password")
    with pytest.raises(SessionExpired, match="account is locked"):
        accounts.check(alice)


def test_weaker_stored_hash_is_upgraded_at_sign_in(conn: sqlite3.Connection, policy: Policy, clock: FakeClock) -> None:
    Accounts(conn, policy, clock=clock, scrypt=FAST).add_user("alice", PASSWORD, ["rfr_user"], by=WORKSPACE_ADMIN)
    stronger = Accounts(conn, policy, clock=clock, scrypt=ScryptParams(n=2**11))
    stronger.login("alice", PASSWORD)
    assert conn.execute("SELECT password_n FROM users").fetchone()[0] == 2**11
    stronger.login("alice", PASSWORD)


def test_a_tampered_hash_record_fails_closed(accounts: Accounts, conn: sqlite3.Connection) -> None:
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


def test_logout_and_forged_sessions(accounts: Accounts, clock: FakeClock, conn: sqlite3.Connection) -> None:
    session = accounts.login("alice", PASSWORD)
    accounts.logout(session)
    assert actions(conn)[-1] == "user.sign_out"
    with pytest.raises(SessionExpired):
        accounts.check(session)
    forged = Session(id="0" * 32, username="ivan", started_at=clock())
    with pytest.raises(SessionExpired):
        accounts.check(forged)
    real = accounts.login("alice", PASSWORD)
    with pytest.raises(SessionExpired):
        accounts.check(Session(id=real.id, username="ivan", started_at=clock()))


def test_require_role(accounts: Accounts) -> None:
    alice = accounts.login("alice", PASSWORD)
    assert accounts.require_role(alice, Role.RFR_USER).username == "alice"
    with pytest.raises(PermissionRefused, match="needs the Approver role; alice does not hold it"):
        accounts.require_role(alice, Role.APPROVER)


def test_roles_change_takes_effect_in_live_sessions(accounts: Accounts) -> None:
    alice = accounts.login("alice", PASSWORD)
    accounts.set_roles("alice", ["rfr_user", "peer_reviewer"], rank="Sergeant", by=WORKSPACE_ADMIN)
    assert accounts.require_role(alice, Role.PEER_REVIEWER).rank == "Sergeant"


# Password change


def test_password_change(accounts: Accounts, clock: FakeClock) -> None:
    clock.advance(days=1)
    accounts.change_password("alice", PASSWORD, OTHER)
    assert accounts.get_user("alice").password_changed_at == clock()
    with pytest.raises(AuthenticationError):
        accounts.login("alice", PASSWORD)
    accounts.login("alice", OTHER)
    with pytest.raises(PasswordRejected, match="must differ from the current one"):
        accounts.change_password("alice", OTHER, OTHER)


def test_password_change_with_a_wrong_current_password_counts_towards_lockout(accounts: Accounts) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            accounts.change_password("alice", "not the password", OTHER)
    with pytest.raises(AccountLocked):
        accounts.change_password("alice", "not the password", OTHER)
    accounts.reset_password("alice", OTHER, by=WORKSPACE_ADMIN)
    with pytest.raises(AccountLocked):
        accounts.login("alice", OTHER)


# Re-authentication for approving and peer-review sign-off


def test_fresh_sign_in_authorises_one_action(accounts: Accounts) -> None:
    ivan = accounts.login("ivan", PASSWORD)
    accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)
    with pytest.raises(ReauthenticationRequired, match="approving needs your password entered again"):
        accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)
    accounts.reauthenticate(ivan, PASSWORD, ReauthPurpose.APPROVE)
    accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)


def test_reauthentication_goes_stale(accounts: Accounts, clock: FakeClock) -> None:
    ivan = accounts.login("ivan", PASSWORD)
    clock.advance(seconds=121)
    with pytest.raises(ReauthenticationRequired, match="signing off a peer review needs your password"):
        accounts.require_reauthentication(ivan, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
    accounts.reauthenticate(ivan, PASSWORD, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
    clock.advance(seconds=120)
    accounts.require_reauthentication(ivan, ReauthPurpose.PEER_REVIEW_SIGN_OFF)


def test_wrong_reauthentication_counts_and_locks_out(accounts: Accounts, conn: sqlite3.Connection) -> None:
    ivan = accounts.login("ivan", PASSWORD)
    accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            accounts.reauthenticate(ivan, "not the password", ReauthPurpose.APPROVE)
        with pytest.raises(ReauthenticationRequired):
            accounts.require_reauthentication(ivan, ReauthPurpose.APPROVE)
    with pytest.raises(AccountLocked):
        accounts.reauthenticate(ivan, "not the password", ReauthPurpose.APPROVE)
    with pytest.raises(SessionExpired):
        accounts.check(ivan)
    refused = [e for e in audit.events(conn) if e.action == "user.sign_in_refused"]
    assert {e.details["purpose"] for e in refused} == {"approve"}


# Transactions and audit


def test_account_changes_refuse_to_commit_a_callers_open_transaction(
    accounts: Accounts, conn: sqlite3.Connection
) -> None:
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE half_done (x)")
    with pytest.raises(RuntimeError, match="finish the open transaction first"):
        accounts.login("alice", PASSWORD)
    conn.execute("ROLLBACK")


def test_account_activity_is_audited_and_the_chain_verifies(accounts: Accounts, conn: sqlite3.Connection) -> None:
    accounts.login("alice", PASSWORD)
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            accounts.login("alice", "not the password")
    accounts.unlock_user("alice", by=WORKSPACE_ADMIN)
    accounts.change_password("alice", PASSWORD, OTHER)
    assert actions(conn) == [
        *["user.add"] * 3,
        "user.sign_in",
        *["user.sign_in_refused"] * 4,
        "user.locked_out",
        "user.unlock",
        "user.password_change",
    ]
    assert [e.actor for e in audit.events(conn)][:4] == ["workspace-admin"] * 3 + ["alice"]
    audit.ensure_terminal_key(conn)
    result = audit.verify(conn, audit.terminal_public_key(conn))
    assert result.ok, result.problems


def test_works_on_an_encrypted_sqlcipher_database(tmp_path: Any, policy: Policy, clock: FakeClock) -> None:
    path = str(tmp_path / "ws.db")
    conn = sqlcipher3.connect(path, isolation_level=None)
    conn.execute("PRAGMA key = \"x'" + "11" * 32 + "'\"")
    audit.create_schema(conn)
    users.create_schema(conn)
    acc = Accounts(conn, policy, clock=clock, scrypt=FAST)
    acc.add_user("alice", PASSWORD, ["rfr_user"], by=WORKSPACE_ADMIN)
    acc.login("alice", PASSWORD)
    conn.close()
    with open(path, "rb") as handle:
        assert b"alice" not in handle.read()


# Property: the lockout rule against a model


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=1, max_size=25))
def test_lockout_matches_the_rule(steps: list[tuple[bool, int]]) -> None:
    """N consecutive failures lock for M minutes; while locked nothing gets in; success resets the count."""
    policy = load_default_policy()
    clock = FakeClock()
    conn = sqlite3.connect(":memory:", isolation_level=None)
    audit.create_schema(conn)
    users.create_schema(conn)
    acc = Accounts(conn, policy, clock=clock, scrypt=FAST)
    acc.add_user("alice", PASSWORD, ["rfr_user"], by=WORKSPACE_ADMIN)
    failures, locked_until = 0, None
    for correct, minutes in steps:
        clock.advance(minutes=minutes)
        now = clock()
        if locked_until is not None and now >= locked_until:
            failures, locked_until = 0, None
        try:
            acc.login("alice", PASSWORD if correct else "not the password")
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
    audit.ensure_terminal_key(conn)
    assert audit.verify(conn, audit.terminal_public_key(conn)).ok
