"""The engine's messages as a person at the screen reads them: without the command-line hints meant for ``rfr``.

The engine speaks to the command line and to the screens with one message (``RfrError.diagnostics()``).
Some of its messages end with what to type at a shell: ``(--reason TEXT)``, ``pass --report FILE``,
``run 'rfr audit verify'``. A custody officer at the application has no shell and no such options: on
a screen those hints are noise, or worse, advice they cannot follow. This module takes them out and,
where the application has its own way to do the same thing, says that instead. It changes words only;
what was refused, and why, is the engine's and stays as the engine said it.
"""

from __future__ import annotations

import re

from engine.errors import RfrError

# Where a command-line hint names something the application does on a screen: what to say instead. A hint
# with no screen behind it (installing the central unit's root is done once, at the terminal's command line,
# by an engineer) is kept as written: it is the only way, and the person it is for is the one who types it.
SCREEN_WAYS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"rfr media trust"), None),
    (re.compile(r"rfr audit verify"), "verify the audit log, key v on the home screen"),
    (re.compile(r"rfr case advice"), "whoever submitted the case records it on the case screen, key v"),
    (re.compile(r"check-index --tune"), "measure and tune it on the Index health screen, key t"),
    (re.compile(r"rfr user passwd"), "change your own password from the home screen, key w"),
    (re.compile(r"\bmake [a-z]|scripts/"), "tell an engineer"),
)
_KEEP = "\x00keep"

_COMMAND = r"(?:--[a-z][\w-]*|'rfr [^']*'|\brfr [a-z]+|\bmake [a-z]+|scripts/[\w./-]+)"
# "(--reason TEXT)", "(rfr case advice)", "('rfr media trust ROOT.json --as ENGINEER')", "(scripts/x.py --install)"
_IN_BRACKETS = re.compile(rf"\s*\((?=[^()]*{_COMMAND})[^()]*\)")
# "search with --face N (1 to 2)" -> "search with (1 to 2)": the option goes, the sentence stays whole
_WITH_OPTION = re.compile(
    r"(?<=\bwith)\s+--[a-z][\w-]*(?:\s+[A-Z][A-Z_]*)?|(?<=\busing)\s+--[a-z][\w-]*(?:\s+[A-Z][A-Z_]*)?"
)
# A clause that is only the command to type: "run 'rfr audit verify'", "pass --report FILE", "use --kind temporary",
# "run check-index --tune", "'rfr media trust ROOT.json'" (not "give the reason", once its bracket is gone).
_HINT_CLAUSE = re.compile(
    rf"^(?:(?:run|re-run|pass|use|give|set|type|create it with)\s+)?(?:{_COMMAND}|[\w.-]+\s+--[a-z])[^;:]*$"
)
_CLAUSES = re.compile(r"(:\s+|;\s+)")


def _way(hint: str) -> str | None:
    """What to say instead of ``hint``: the screen's way, ``_KEEP`` (say it as written), or None (say nothing)."""
    for pattern, way in SCREEN_WAYS:
        if pattern.search(hint):
            return _KEEP if way is None else way
    return None


def _bracket(match: re.Match[str]) -> str:
    way = _way(match.group(0))
    if way == _KEEP:
        return match.group(0)
    return f" ({way})" if way else ""


def for_a_person(message: str) -> str:
    """``message`` without command-line hints, on one line; where the application has its own way to do what
    the hint said, that way instead."""
    text = _IN_BRACKETS.sub(_bracket, " ".join(str(message).split()))
    parts = _CLAUSES.split(text)  # clause, separator, clause, ...
    kept: list[str] = []
    for at in range(0, len(parts), 2):
        clause = parts[at]
        if at and _HINT_CLAUSE.match(clause.strip().rstrip(".")):
            way = _way(clause)
            if way is None:
                continue  # the hint goes, and the separator before it
            if way != _KEEP:
                clause = way
        if kept:
            kept.append(parts[at - 1])
        kept.append(clause)
    text = _WITH_OPTION.sub("", "".join(kept))
    return text.strip().rstrip(":;,").strip()


def said(error: BaseException, fallback: str) -> str:
    """What a screen says for ``error``: the engine's sentence for a person, or ``fallback`` (never internals)."""
    return for_a_person(error.diagnostics()) if isinstance(error, RfrError) else fallback


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 bundle``, ``2 bundles``: a count with its noun agreeing (``plural`` when it is not the noun with an s)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def sentence(text: str) -> str:
    """The engine's one-line message as a sentence on screen (capital first, full stop last)."""
    text = " ".join(text.split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
