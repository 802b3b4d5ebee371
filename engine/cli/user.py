"""``rfr user ...``: user accounts at the terminal.

Every change is made by a signed-in engineer (``--as ENGINEER``), and changes that grant access
take two: ``add``, ``roles`` and ``reset`` ask, and a different engineer ``confirm``s within the
policy's time, setting the first password of a new account or a reset one (so the engineer who
asked never knows it). The only change made without a signed-in engineer is adding the first
engineer to a workspace with no users (``rfr user add NAME --role engineer`` without ``--as``),
which is audited. A user whose password was set by an engineer must change it (``rfr user
passwd``) before doing anything else.

Passwords never come from argv: the acting person's from ``RFR_PASSWORD``, a new one from
``RFR_NEW_PASSWORD``, otherwise from a prompt when run at a terminal.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli import emit
from engine.cli.secret_input import NEW_PASSWORD_ENV, PASSWORD_ENV, read_secret
from engine.cli.terminal import acting, actor_option, open_terminal, terminal_options
from engine.errors import PermissionRefused
from engine.security.users import AccountRequest, RequestKind, Role, User


def register(sub: Any) -> None:
    parser = sub.add_parser("user", help="user accounts: add, roles, reset, confirm, lock, unlock, list")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="user_command", metavar="COMMAND")
    common = terminal_options()
    roles = ", ".join(r.value for r in Role)

    add = commands.add_parser(
        "add",
        help="ask to add a user (a second engineer confirms and sets the first password)",
        parents=[common],
        description=(
            "Ask to add a user; a second engineer confirms with 'rfr user confirm', setting the first password "
            f"(${NEW_PASSWORD_ENV} or asked twice), which the user changes at first sign-in. Without --as, only on "
            "a terminal with no users: adds its first engineer (password from the same place). A terminal's "
            "second engineer is added at once, with its first password, since nobody else could confirm."
        ),
    )
    add.add_argument("username", metavar="USER")
    add.add_argument("--role", action="append", required=True, metavar="ROLE", help=f"repeatable: {roles}")
    add.add_argument("--rank", metavar="RANK", help="rank or staff grade from the policy (approvers need one)")
    add.add_argument("--display-name", default="", metavar="TEXT")
    add.add_argument(
        "--as", dest="actor", metavar="USER", help="the engineer asking (left out only for a terminal's first user)"
    )
    add.set_defaults(handler=_add)

    roles_cmd = commands.add_parser(
        "roles", help="ask to set a user's roles and rank (a second engineer confirms)", parents=[common]
    )
    roles_cmd.add_argument("username", metavar="USER")
    roles_cmd.add_argument("--role", action="append", required=True, metavar="ROLE", help=f"repeatable: {roles}")
    roles_cmd.add_argument("--rank", metavar="RANK", help="rank or staff grade from the policy")
    actor_option(roles_cmd)
    roles_cmd.set_defaults(handler=_roles)

    reset = commands.add_parser(
        "reset",
        help="ask to reset a forgotten password (a second engineer confirms and sets a temporary one)",
        parents=[common],
        description="The confirming engineer sets a temporary password; the user must change it at next sign-in.",
    )
    reset.add_argument("username", metavar="USER")
    actor_option(reset)
    reset.set_defaults(handler=_reset)

    requests = commands.add_parser("requests", help="account changes waiting for a second engineer", parents=[common])
    actor_option(requests)
    requests.set_defaults(handler=_requests)

    confirm = commands.add_parser(
        "confirm",
        help="confirm another engineer's account change (a new account or reset: set its first password)",
        parents=[common],
        description=f"For a new account or a reset, the first password: ${NEW_PASSWORD_ENV}, or asked twice.",
    )
    confirm.add_argument("request", metavar="REQUEST", type=int)
    actor_option(confirm)
    confirm.set_defaults(handler=_confirm)

    cancel = commands.add_parser("cancel", help="refuse or withdraw a pending account change", parents=[common])
    cancel.add_argument("request", metavar="REQUEST", type=int)
    cancel.add_argument("--reason", required=True, metavar="TEXT")
    actor_option(cancel)
    cancel.set_defaults(handler=_cancel)

    passwd = commands.add_parser(
        "passwd",
        help="change your own password",
        parents=[common],
        description=f"Current password from ${PASSWORD_ENV}, new from ${NEW_PASSWORD_ENV} (else asked).",
    )
    passwd.add_argument("username", metavar="USER")
    passwd.set_defaults(handler=_passwd)

    lock = commands.add_parser("lock", help="lock an account until an engineer unlocks it", parents=[common])
    lock.add_argument("username", metavar="USER")
    lock.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded; shown to the user)")
    actor_option(lock)
    lock.set_defaults(handler=_lock)

    unlock = commands.add_parser("unlock", help="unlock an account", parents=[common])
    unlock.add_argument("username", metavar="USER")
    actor_option(unlock)
    unlock.set_defaults(handler=_unlock)

    lister = commands.add_parser("list", help="list users, roles, ranks and locks", parents=[common])
    actor_option(lister)
    lister.set_defaults(handler=_list)


def _request_text(request: AccountRequest) -> str:
    if request.state == "confirmed":
        return f"Done: {request.describe()} (request {request.id}; no second engineer exists to confirm it)."
    return (
        f"Asked to {request.describe()}: request {request.id} waits for a second engineer: "
        f"rfr user confirm {request.id} --as ENGINEER"
    )


def _user_payload(user: User, now: Any) -> dict[str, Any]:
    return user.as_dict(now)


def _add(args: argparse.Namespace) -> int:
    if args.actor is None:
        with open_terminal(args) as terminal:
            password = read_secret(NEW_PASSWORD_ENV, f"New password for {args.username}: ", confirm=True)
            if set(args.role) != {Role.ENGINEER.value}:
                raise PermissionRefused(
                    "adding a user refused: without --as, only a terminal's first engineer can be added "
                    "(--role engineer); every other account is asked for by a signed-in engineer"
                )
            user = terminal.accounts.bootstrap_engineer(args.username, password, display_name=args.display_name)
            payload = _user_payload(user, terminal.ws.now())
        emit(args, payload, f"Added {user.username}, the first engineer of this terminal.")
        return 0
    with acting(args) as (terminal, session):
        first: str | None = None
        if terminal.accounts.adds_at_once(args.role, by=session):  # the second engineer: nobody else to confirm
            first = read_secret(NEW_PASSWORD_ENV, f"First password for {args.username}: ", confirm=True)
        request = terminal.accounts.request_add(
            args.username,
            args.role,
            by=session,
            rank=args.rank,
            display_name=args.display_name,
            password=first,
        )
    emit(args, request.to_json(), _request_text(request))
    return 0


def _roles(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        request = terminal.accounts.request_roles(args.username, args.role, by=session, rank=args.rank)
    emit(args, request.to_json(), _request_text(request))
    return 0


def _reset(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        request = terminal.accounts.request_reset(args.username, by=session)
    emit(args, request.to_json(), _request_text(request))
    return 0


def _requests(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        pending = terminal.accounts.pending_requests(session)
    lines = [
        f"{r.id:>5}  {r.describe()}  (asked by {r.requested_by} at {r.to_json()['requested_at']})" for r in pending
    ]
    emit(args, {"requests": [r.to_json() for r in pending]}, "\n".join(lines) if lines else "No pending requests.")
    return 0


def _confirm(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        # Refuses first a request this engineer may not confirm, so nobody types a password in vain.
        request = terminal.accounts.confirmable(args.request, by=session)
        password = None
        if request.kind in (RequestKind.ADD, RequestKind.RESET):
            password = read_secret(NEW_PASSWORD_ENV, f"First password for {request.username}: ", confirm=True)
        user = terminal.accounts.confirm(args.request, by=session, password=password)
        payload = {"request": args.request, "user": _user_payload(user, terminal.ws.now())}
    emit(args, payload, f"Confirmed request {args.request}: {request.describe()}.")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        request = terminal.accounts.cancel(args.request, by=session, reason=args.reason)
    emit(args, request.to_json(), f"Cancelled request {request.id}: {request.describe()}.")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    with open_terminal(args) as terminal:
        current = read_secret(PASSWORD_ENV, f"Current password for {args.username}: ")
        new = read_secret(NEW_PASSWORD_ENV, "New password: ", confirm=True)
        user = terminal.accounts.change_password(args.username, current, new)
        payload = _user_payload(user, terminal.ws.now())
    emit(args, payload, f"Password of {user.username} changed.")
    return 0


def _lock(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        user = terminal.accounts.lock_user(args.username, by=session, reason=args.reason)
        payload = _user_payload(user, terminal.ws.now())
    emit(args, payload, f"Locked {user.username}.")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        user = terminal.accounts.unlock_user(args.username, by=session)
        payload = _user_payload(user, terminal.ws.now())
    emit(args, payload, f"Unlocked {user.username}.")
    return 0


def _list(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        now = terminal.ws.now()
        users = [_user_payload(u, now) for u in terminal.accounts.directory(session)]
    lines = [f"{'USER':20} {'RANK':22} {'LOCKED':7} ROLES"]
    lines += [
        f"{u['username']:20} {u['rank'] or '-':22} {'yes' if u['locked'] else 'no':7} {', '.join(u['roles'])}"
        + ("  (must change password)" if u["must_change_password"] else "")
        for u in users
    ]
    emit(args, {"users": users}, "\n".join(lines) if users else "No users yet.")
    return 0
