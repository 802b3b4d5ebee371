"""One error hierarchy for the whole engine.

Every error a person can cause or fix carries a plain-language, one-line
``diagnostics()`` naming what is wrong and what to do; the CLI prints exactly that and
exits non-zero, the TUI shows it in a dialog. Secrets never appear in these messages.
"""

from __future__ import annotations


class RfrError(Exception):
    """Base class: a failure with a message meant for the person at the terminal."""

    exit_code = 1

    def diagnostics(self) -> str:
        text = str(self) or self.__class__.__name__
        return " ".join(text.split())


class UsageError(RfrError):
    """The command was called wrongly (bad option, missing argument)."""

    exit_code = 2


class ImageError(RfrError):
    """An image file cannot be used as a Probe Image or reference image."""


class ModelError(RfrError):
    """A model file is missing, unreadable, or fails its manifest hash."""


class DeviceError(RfrError):
    """The requested inference device is not available on this terminal."""
