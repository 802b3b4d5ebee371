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


class KeySourceError(RfrError):
    """No workspace key could be obtained (no passphrase given, unusable key file)."""


class WrongKeyError(RfrError):
    """The passphrase or key file does not open this workspace."""


class WorkspaceError(RfrError):
    """The workspace folder is missing, not a workspace, already exists, or is from a newer version."""


class LibraryError(RfrError):
    """A Permitted Image Reference Library does not exist, is empty, has lapsed, or cannot be changed so."""


class MetadataError(RfrError):
    """An enrolment metadata file (CSV or YAML) is malformed; the message names the row or key."""


class SnapshotError(RfrError):
    """An encrypted index snapshot is unreadable, tampered with, or does not match the database."""


class PolicyError(RfrError):
    """A policy file is malformed, or asks for something the policy does not define."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


class AuthenticationError(RfrError):
    """A sign-in or re-authentication failed (wrong username or password)."""


class AccountLocked(AuthenticationError):
    """The account is locked (too many failed sign-ins, or locked by an engineer)."""


class PasswordRejected(RfrError):
    """A new password breaks the password rules."""


class PasswordChangeRequired(RfrError):
    """The account's password was set by someone else: it must be changed before anything else."""


class SessionExpired(RfrError):
    """The session ended (idle too long, signed out, or the account was locked)."""


class ReauthenticationRequired(RfrError):
    """The action needs the password entered again, just before it."""


class PermissionRefused(RfrError):
    """The signed-in person's role or rank does not allow the action."""


class UserError(RfrError):
    """A user account cannot be created or changed as asked (bad username, unknown role or rank)."""


class AuditError(RfrError):
    """The audit log cannot be signed or checked as asked (no terminal key, unreadable public key)."""


class CalibrationError(RfrError):
    """A score calibration is missing, malformed, for another model, or disagrees with the policy's threshold."""


class FormError(RfrError):
    """The RFR Submission Form is incomplete or invalid; the message names the field."""


class CaseError(RfrError):
    """A case does not exist, or the action is not possible in the case's state."""


class MatchReportError(RfrError):
    """A Match Report is incomplete or malformed; the message names the factor or key."""


class ConfigError(RfrError):
    """The terminal's configuration (workspace, keys, device) is missing or wrong; the message names the setting."""


class StorageError(RfrError):
    """The disk is full or cannot be written; nothing was half-written."""
