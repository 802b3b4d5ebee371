"""Where the command line gets passwords: the environment (read once, then removed) or a prompt.

Passwords never come from argv. ``RFR_PASSWORD`` is the acting person's; ``RFR_NEW_PASSWORD`` a
new or reset password. Each is taken out of the process environment as soon as it is read,
so no child process (a library's helper, a telemetry fork) can inherit it.
"""

from __future__ import annotations

import getpass
import sys

from engine.errors import UsageError
from engine.security.environment import take_secret

PASSWORD_ENV = "RFR_PASSWORD"  # noqa: S105 (the variable's name, not a secret)
NEW_PASSWORD_ENV = "RFR_NEW_PASSWORD"  # noqa: S105


def read_secret(env_name: str, prompt: str, *, confirm: bool = False, what: str = "password") -> str:
    """A secret from the environment, else a prompt at a terminal (asked twice when ``confirm``)."""
    value = take_secret(env_name)
    if value is None:
        if not sys.stdin.isatty():
            raise UsageError(f"no {what}: set {env_name}, or run from a terminal to be asked")
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat it: ") != value:
            raise UsageError(f"the two {what}s differ: nothing was changed")
    if not value:
        raise UsageError(f"the {what} is empty (set {env_name} or type it when asked)")
    return value
