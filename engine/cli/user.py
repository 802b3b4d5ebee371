"""``rfr user ...``: user accounts at the terminal; and how every command signs its actor in.

Who may manage users: an engineer, signed in with ``--as ENGINEER`` (password from
``RFR_PASSWORD`` or a prompt). While the workspace has no engineer account yet, the holder
of the workspace key may act without ``--as`` (recorded as ``workspace-admin``): that is how
the first engineer is created. Once an engineer exists, every change is attributable to a
named engineer, except ``unlock``, which the key holder may always do so that a terminal whose
engineers are all locked out can be recovered.

Passwords never come from argv: the acting person's from ``RFR_PASSWORD``, a new one from
``RFR_NEW_PASSWORD``, otherwise from a prompt when run at a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.cli import emit
from engine.cli.workspace import open_workspace, workspace_options
from engine.errors import PermissionRefused, UsageError
from engine.policy import Policy, load_default_policy
from engine.security.users import (
    DEFAULT_SCRYPT,
    WORKSPACE_ADMIN,
    Accounts,
    Role,
    ScryptParams,
    Session,
    WorkspaceAdmin,
)
from engine.workspace import Workspace

PASSWORD_ENV = "RFR_PASSWORD"  # noqa: S105 (the variable's name, not a secret)
NEW_PASSWORD_ENV = "RFR_NEW_PASSWORD"  # noqa: S105

# Tests lower this (monkeypatch); a terminal always uses the default cost.
SCRYPT: ScryptParams = DEFAULT_SCRYPT


def cli_policy() -> Policy:
    """The policy the commands enforce (the default policy until policy packages arrive from media)."""
    return load_default_policy()


def accounts_for(ws: Workspace, policy: Policy) -> Accounts:
    return Accounts(ws._require_open(), policy, clock=ws.now, scrypt=SCRYPT, transaction=ws.transaction)


@contextmanager
def _accounts(args: argparse.Namespace) -> Iterator[tuple[Workspace, Accounts]]:
    """The open workspace and its accounts under the policy in force."""
    with open_workspace(args) as ws:
        yield ws, accounts_for(ws, cli_policy())


def read_secret(env_name: str, prompt: str, *, confirm: bool = False) -> str:
    """A secret from the environment, else a prompt at a terminal (asked twice when ``confirm``)."""
    value = os.environ.get(env_name)
    if value is None:
        if not sys.stdin.isatty():
            raise UsageError(f"no password: set {env_name}, or run from a terminal to be asked")
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat it: ") != value:
            raise UsageError("the two passwords differ: nothing was changed")
    if not value:
        raise UsageError(f"the password is empty (set {env_name} or type it when asked)")
    return value


def sign_in(accounts: Accounts, username: str) -> Session:
    """Sign the acting person (``--as USER``) in with their password; the sign-in is audited."""
    return accounts.login(username, read_secret(PASSWORD_ENV, f"Password for {username}: "))


def actor_option(parser: argparse.ArgumentParser, *, required: bool, help_text: str | None = None) -> None:
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="USER",
        required=required,
        help=help_text or f"who is acting (password from ${PASSWORD_ENV} or a prompt)",
    )


def _admin(
    accounts: Accounts, args: argparse.Namespace, *, key_holder_always: bool = False
) -> Session | WorkspaceAdmin:
    if args.actor:
        return sign_in(accounts, args.actor)
    if key_holder_always:
        return WORKSPACE_ADMIN
    engineers = [u.username for u in accounts.list_users() if u.has_role(Role.ENGINEER)]
    if engineers:
        raise PermissionRefused(
            "managing users refused: this terminal has an engineer account, so the change must be made by a named "
            "engineer: pass --as ENGINEER"
        )
    return WORKSPACE_ADMIN


def register(sub: Any) -> None:
    parser = sub.add_parser("user", help="user accounts: add, change password, lock, unlock, list")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="user_command", metavar="COMMAND")
    common = workspace_options()
    roles = ", ".join(r.value for r in Role)

    add = commands.add_parser(
        "add",
        help="add a user",
        parents=[common],
        description=f"Add a user. The new password comes from ${NEW_PASSWORD_ENV} or is asked twice.",
    )
    add.add_argument("username", metavar="USER")
    add.add_argument("--role", action="append", required=True, metavar="ROLE", help=f"repeatable: {roles}")
    add.add_argument("--rank", metavar="RANK", help="rank or staff grade from the policy (approvers need one)")
    add.add_argument("--display-name", default="", metavar="TEXT")
    actor_option(add, required=False, help_text="the engineer making the change (not needed for the first one)")
    add.set_defaults(handler=_add)

    passwd = commands.add_parser(
        "passwd",
        help="change your password, or reset someone's (--reset)",
        parents=[common],
        description=(
            f"Change USER's own password (current from ${PASSWORD_ENV}, new from ${NEW_PASSWORD_ENV}), or with "
            "--reset set a new one for a user who forgot theirs (an engineer, --as ENGINEER)."
        ),
    )
    passwd.add_argument("username", metavar="USER")
    passwd.add_argument("--reset", action="store_true", help="an engineer sets a new password")
    actor_option(passwd, required=False, help_text="the engineer resetting the password (with --reset)")
    passwd.set_defaults(handler=_passwd)

    lock = commands.add_parser("lock", help="lock an account until an engineer unlocks it", parents=[common])
    lock.add_argument("username", metavar="USER")
    lock.add_argument("--reason", default="", help="why (recorded)")
    actor_option(lock, required=False, help_text="the engineer locking the account")
    lock.set_defaults(handler=_lock)

    unlock = commands.add_parser("unlock", help="unlock an account", parents=[common])
    unlock.add_argument("username", metavar="USER")
    actor_option(unlock, required=False, help_text="the engineer unlocking (the workspace key holder may too)")
    unlock.set_defaults(handler=_unlock)

    lister = commands.add_parser("list", help="list users, roles, ranks and locks", parents=[common])
    lister.set_defaults(handler=_list)


def _add(args: argparse.Namespace) -> int:
    with _accounts(args) as (ws, accounts):
        by = _admin(accounts, args)
        password = read_secret(NEW_PASSWORD_ENV, f"New password for {args.username}: ", confirm=True)
        user = accounts.add_user(
            args.username, password, args.role, by=by, rank=args.rank, display_name=args.display_name
        )
        payload = user.as_dict(ws.now())
    emit(args, payload, f"Added {user.username} ({', '.join(payload['roles'])}; rank {user.rank or 'none'}).")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    with _accounts(args) as (ws, accounts):
        if args.reset:
            by = _admin(accounts, args)
            new = read_secret(NEW_PASSWORD_ENV, f"New password for {args.username}: ", confirm=True)
            user = accounts.reset_password(args.username, new, by=by)
        else:
            if args.actor and args.actor != args.username:
                raise PermissionRefused("password change refused: only USER may change their own password; use --reset")
            current = read_secret(PASSWORD_ENV, f"Current password for {args.username}: ")
            new = read_secret(NEW_PASSWORD_ENV, "New password: ", confirm=True)
            user = accounts.change_password(args.username, current, new)
        payload = user.as_dict(ws.now())
    emit(args, payload, f"Password of {user.username} {'reset' if args.reset else 'changed'}.")
    return 0


def _lock(args: argparse.Namespace) -> int:
    with _accounts(args) as (ws, accounts):
        user = accounts.lock_user(args.username, by=_admin(accounts, args), reason=args.reason)
        payload = user.as_dict(ws.now())
    emit(args, payload, f"Locked {user.username}.")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    with _accounts(args) as (ws, accounts):
        user = accounts.unlock_user(args.username, by=_admin(accounts, args, key_holder_always=True))
        payload = user.as_dict(ws.now())
    emit(args, payload, f"Unlocked {user.username}.")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _accounts(args) as (ws, accounts):
        now = ws.now()
        users = [u.as_dict(now) for u in accounts.list_users()]
    lines = [f"{'USER':20} {'RANK':22} {'LOCKED':7} ROLES"]
    lines += [
        f"{u['username']:20} {u['rank'] or '-':22} {'yes' if u['locked'] else 'no':7} {', '.join(u['roles'])}"
        for u in users
    ]
    emit(args, {"users": users}, "\n".join(lines) if users else "No users yet.")
    return 0
