"""Secrets given in the environment (``RFR_PASSWORD``, ``RFR_PASSPHRASE``... ``SECRET_VARIABLES``) leave it when read.

``take_secret`` removes the variable from ``os.environ`` (which unsets it in the C environment,
so no program started afterwards inherits it) and also blanks it in the block the process was
started with: Linux keeps that block, and shows it as ``/proc/<pid>/environ`` of the terminal and
of any child forked from it, even after ``unsetenv``. Only that block is written (its bounds come
from ``/proc/self/stat``), never memory owned by the C library.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# Fields 50 and 51 of /proc/<pid>/stat (Linux 3.5 and later): where the initial environment lies.
_ENV_START_FIELD = 50
SECRET_VARIABLES = (  # names
    "RFR_PASSWORD",
    "RFR_NEW_PASSWORD",
    "RFR_PASSPHRASE",
    "RFR_OVERSIGHT_PASSPHRASE",
    "RFR_REPORT_PASSPHRASE",  # a Match Report file's passphrase (rfr case report)
)
# Secrets taken out of the environment at start-up (``take_all``) and not yet asked for.
_held: dict[str, str] = {}


def take_secret(name: str) -> str | None:
    """The value of environment variable ``name`` (None when unset), removed from the environment."""
    if name in _held:
        return _held.pop(name)
    value = os.environ.pop(name, None)
    if value is not None:
        _blank_initial_environment(name)
    return value


def take_all(names: tuple[str, ...] = SECRET_VARIABLES) -> None:
    """Take every secret variable out of the environment now, even those this command will not read.

    The command line calls this first, so a secret it never asks for (a passphrase beside a key
    file, a password on a command that fails early) does not stay behind for a child to inherit.
    """
    for name in names:
        value = os.environ.pop(name, None)
        if value is not None:
            _blank_initial_environment(name)
            _held[name] = value


def forget_all() -> None:
    """Drop secrets taken but never asked for (the end of a command)."""
    _held.clear()


def _initial_environment() -> tuple[int, int] | None:
    try:
        stat = Path("/proc/self/stat").read_bytes()
    except OSError:
        return None  # not Linux: there is no such block to blank
    # The command name (field 2) is in parentheses and may hold spaces; fields 3 onwards follow it.
    fields = stat.rsplit(b")", 1)[1].split()
    at = _ENV_START_FIELD - 3
    if len(fields) < at + 2:
        return None
    start, end = int(fields[at]), int(fields[at + 1])
    return (start, end) if 0 < start < end else None


def _blank_initial_environment(name: str) -> None:
    bounds = _initial_environment()
    if bounds is None:
        return
    start, end = bounds
    block = ctypes.string_at(start, end - start)
    prefix = os.fsencode(name) + b"="
    offset = 0
    while offset < len(block):
        stop = block.find(b"\0", offset)
        stop = len(block) if stop < 0 else stop
        if block.startswith(prefix, offset):
            ctypes.memset(start + offset, 0, stop - offset)
        offset = stop + 1
