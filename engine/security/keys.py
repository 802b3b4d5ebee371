"""The workspace key: where it comes from, and the subkeys derived from it.

A workspace has one 32-byte master key. It is either derived from a passphrase with scrypt
(salt and cost parameters kept in the workspace's plaintext header, see ``KdfSpec``) or read
from a key file of exactly 32 random bytes. Every use of the key goes through HKDF with its
own label (``WorkspaceKey.derive``), so the database key, the index snapshot keys and the key
check value are independent of each other.

Secrets never come from argv: a passphrase comes from ``RFR_PASSPHRASE`` or an interactive
prompt, a key from ``--key-file PATH``. ``WorkspaceKey`` never shows its bytes in ``repr``,
``str``, logs or pickles. Python cannot reliably wipe immutable ``bytes``; the key lives in
process memory for as long as the workspace is open (terminals need encrypted swap).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import KeySourceError, WorkspaceError
from engine.files import read_regular_file
from engine.security.environment import take_secret

KEY_BYTES = 32
SALT_BYTES = 16
PASSPHRASE_ENV = "RFR_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
MIN_NEW_PASSPHRASE = 12

# scrypt cost: 2**17 * 8 * 128 bytes = 128 MiB and about a second on a terminal, per attempt.
DEFAULT_SCRYPT_N = 2**17
DEFAULT_SCRYPT_R = 8
DEFAULT_SCRYPT_P = 1
_SCRYPT_N_RANGE = (2**10, 2**22)  # below: pointless; above: 4 GiB of memory per attempt
_KEY_CHECK_LABEL = "rfr/key-check/v1"

KdfMethod = Literal["scrypt", "key-file"]


@dataclass(frozen=True)
class KdfSpec:
    """How a workspace's master key is obtained: the non-secret half, stored in the header."""

    method: KdfMethod
    salt: bytes = b""
    n: int = DEFAULT_SCRYPT_N
    r: int = DEFAULT_SCRYPT_R
    p: int = DEFAULT_SCRYPT_P

    @classmethod
    def new_scrypt(cls, n: int = DEFAULT_SCRYPT_N, r: int = DEFAULT_SCRYPT_R, p: int = DEFAULT_SCRYPT_P) -> KdfSpec:
        spec = cls("scrypt", secrets.token_bytes(SALT_BYTES), n, r, p)
        spec.validate()
        return spec

    @classmethod
    def key_file(cls) -> KdfSpec:
        return cls("key-file")

    def validate(self) -> None:
        if self.method == "key-file":
            return
        if self.method != "scrypt":
            _bad_header(f"unknown key derivation {self.method!r}")
        lo, hi = _SCRYPT_N_RANGE
        if not (lo <= self.n <= hi) or self.n & (self.n - 1):
            _bad_header(f"scrypt n={self.n} is not a power of two between {lo} and {hi}")
        if not (1 <= self.r <= 32 and 1 <= self.p <= 16):
            _bad_header(f"scrypt r={self.r} p={self.p} out of range")
        if len(self.salt) != SALT_BYTES:
            _bad_header("scrypt salt has the wrong length")

    def to_json(self) -> dict[str, Any]:
        if self.method == "key-file":
            return {"method": "key-file"}
        return {"method": "scrypt", "salt": self.salt.hex(), "n": self.n, "r": self.r, "p": self.p}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KdfSpec:
        try:
            method = data["method"]
            if method == "key-file":
                return cls("key-file")
            if method != "scrypt":
                _bad_header(f"unknown key derivation {method!r}")
            spec = cls("scrypt", bytes.fromhex(str(data["salt"])), int(data["n"]), int(data["r"]), int(data["p"]))
        except (KeyError, TypeError, ValueError) as exc:
            _bad_header(f"key derivation settings are malformed ({exc.__class__.__name__})")
        spec.validate()
        return spec


def _bad_header(what: str) -> NoReturn:
    raise WorkspaceError(f"workspace header is damaged: {what}; restore workspace.json from a backup")


class WorkspaceKey:
    """The 32-byte workspace master key. Opaque: never printed, compared in constant time."""

    __slots__ = ("_key", "kdf")

    def __init__(self, raw: bytes, kdf: KdfSpec) -> None:
        if len(raw) != KEY_BYTES:
            raise KeySourceError(f"a workspace key is {KEY_BYTES} bytes; this one is {len(raw)}")
        self._key = bytes(raw)
        self.kdf = kdf

    @classmethod
    def generate(cls) -> WorkspaceKey:
        """A fresh random key, for a workspace opened with a key file."""
        return cls(secrets.token_bytes(KEY_BYTES), KdfSpec.key_file())

    @classmethod
    def from_passphrase(cls, passphrase: str, kdf: KdfSpec) -> WorkspaceKey:
        """scrypt(passphrase, salt) with the cost in ``kdf`` (from the header, or ``KdfSpec.new_scrypt()``)."""
        if kdf.method != "scrypt":
            raise KeySourceError("this workspace is opened with a key file, not a passphrase: pass --key-file PATH")
        if not passphrase:
            raise KeySourceError("the passphrase is empty")
        kdf.validate()
        raw = hashlib.scrypt(
            passphrase.encode("utf-8"),
            salt=kdf.salt,
            n=kdf.n,
            r=kdf.r,
            p=kdf.p,
            maxmem=256 * kdf.r * kdf.n * kdf.p + (64 << 20),
            dklen=KEY_BYTES,
        )
        return cls(raw, kdf)

    def derive(self, label: str, *, salt: bytes | None = None, context: bytes = b"", length: int = KEY_BYTES) -> bytes:
        """An independent subkey for one purpose: HKDF-SHA256 with ``label`` (and ``context``) as info."""
        info = label.encode("ascii") + b"\x00" + context
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(self._key)

    def check_value(self) -> str:
        """A non-secret value stored in the header so a wrong key is refused before the database is touched."""
        return self.derive(_KEY_CHECK_LABEL, length=16).hex()

    def matches_check_value(self, stored: str) -> bool:
        return hmac.compare_digest(self.check_value(), stored)

    def write_key_file(self, path: Path) -> None:
        """Write the raw key to a new file readable by its owner only (mode 0600); refuse to overwrite."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeySourceError(
                f"key file {path} already exists: choose a new path, keys are never overwritten"
            ) from None
        except OSError as exc:
            raise KeySourceError(f"cannot create key file {path}: {exc.strerror}") from None
        try:
            os.write(fd, self._key)
            os.fsync(fd)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"WorkspaceKey(<redacted>, {self.kdf.method})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkspaceKey) and hmac.compare_digest(self._key, other._key)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        raise TypeError("a WorkspaceKey cannot be pickled or copied out of the process")


def read_key_file(path: Path) -> WorkspaceKey:
    """Read a key file: a regular file of exactly 32 bytes that only its owner can read.

    Never follows a symbolic link and never blocks on a FIFO or device (``engine.files``).
    """
    raw = read_regular_file(Path(path), limit=4096, what="key file", error=KeySourceError, private=True)
    if len(raw) != KEY_BYTES:
        raise KeySourceError(f"key file {path} is not a workspace key ({KEY_BYTES} bytes expected)")
    return WorkspaceKey(raw, KdfSpec.key_file())


Prompt = Callable[[str], str]


def read_passphrase(
    *, confirm: bool = False, env: Mapping[str, str] | None = None, prompt: Prompt | None = None
) -> str:
    """The passphrase from ``RFR_PASSPHRASE`` (taken out of the environment), else a prompt at a terminal.

    ``confirm`` asks twice (for a new workspace) and enforces a minimum length.
    """
    passphrase = take_secret(PASSPHRASE_ENV) if env is None else env.get(PASSPHRASE_ENV)
    if passphrase is None:
        if prompt is None:
            if not sys.stdin.isatty():
                raise KeySourceError(
                    f"no passphrase: set {PASSPHRASE_ENV}, run from a terminal to be asked, or pass --key-file PATH"
                )
            prompt = getpass.getpass
        passphrase = prompt("Workspace passphrase: ")
        if confirm and prompt("Repeat the passphrase: ") != passphrase:
            raise KeySourceError("the two passphrases differ: nothing was created")
    if not passphrase:
        raise KeySourceError("the passphrase is empty")
    if confirm and len(passphrase) < MIN_NEW_PASSPHRASE:
        raise KeySourceError(f"a new workspace passphrase needs at least {MIN_NEW_PASSPHRASE} characters")
    return passphrase


def obtain_key(
    kdf: KdfSpec, key_file: Path | None, *, env: Mapping[str, str] | None = None, prompt: Prompt | None = None
) -> WorkspaceKey:
    """The key for an existing workspace whose header says ``kdf``: from the key file or the passphrase."""
    if kdf.method == "key-file":
        if key_file is None:
            raise KeySourceError("this workspace is opened with a key file: pass --key-file PATH")
        return read_key_file(key_file)
    if key_file is not None:
        raise KeySourceError(f"this workspace is opened with a passphrase, not a key file: set {PASSPHRASE_ENV}")
    return WorkspaceKey.from_passphrase(read_passphrase(env=env, prompt=prompt), kdf)


def new_key(
    *,
    key_file: Path | None = None,
    new_key_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    prompt: Prompt | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> WorkspaceKey:
    """The key for a new workspace: a new key file, an existing key file, or a new passphrase (asked twice)."""
    if key_file is not None and new_key_file is not None:
        raise KeySourceError("give either --key-file or --new-key-file, not both")
    if new_key_file is not None:
        key = WorkspaceKey.generate()
        key.write_key_file(new_key_file)
        return key
    if key_file is not None:
        return read_key_file(key_file)
    return WorkspaceKey.from_passphrase(
        read_passphrase(confirm=True, env=env, prompt=prompt), KdfSpec.new_scrypt(scrypt_n)
    )
