"""Biometric outputs at rest on the central unit's own machines, sealed with a key made from the central passphrase.

Central enrolment writes templates, image hashes and per-image outcomes; nothing biometric is
ever written in plaintext, on the central unit's machines as on a terminal. The choice:

- **The key** is scrypt (n=2**17, r=8, p=1: the terminal's own cost for passphrases, 128 MiB and
  about a second) of the central passphrase (``RFR_CENTRAL_PASSPHRASE``, the one that opens the
  online signing keys) with a random salt kept beside the outputs. The people who may sign
  packages are the people who may read what goes into them, so no second secret is handed out,
  stored or lost; and the key is never on disk. A key check value (an HMAC under a subkey) lets
  a wrong passphrase be refused in one line before any work starts.
- **Each file** is AES-256-GCM (``cryptography``, already a dependency) under an HKDF-SHA256
  subkey per purpose, with a random 96-bit nonce; the associated data binds the file to its
  enrolment and its place (which batch of rows), so a part swapped, replayed from another
  enrolment or altered is refused, not silently read.
- **Writes are atomic**: a temporary file in the same folder (owner-only), fsync, rename, fsync of
  the folder. A crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.central import CentralError
from engine.files import fsync_dir


@dataclass(frozen=True)
class Kdf:
    """How a passphrase is stretched into a key file's PEM password (scrypt; the terminal's cost by default)."""

    n: int = 2**17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not (2**10 <= self.n <= 2**20 and self.n & (self.n - 1) == 0 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise CentralError(f"scrypt cost n={self.n} r={self.r} p={self.p} is out of range")

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        return hashlib.scrypt(
            secret, salt=salt, n=self.n, r=self.r, p=self.p, dklen=32, maxmem=256 * self.r * self.n + (1 << 20)
        )


DEFAULT_KDF = Kdf()


MAGIC = b"RFRSEAL1"
_NONCE = 12
_CHECK_LABEL = b"rfr/central/sealed/check"


@dataclass(frozen=True)
class SealingKey:
    """The key that seals central outputs; built from the passphrase, never stored."""

    _master: bytes

    def __repr__(self) -> str:
        return "SealingKey(<secret>)"

    @classmethod
    def create(cls, passphrase: str, kdf: Kdf = DEFAULT_KDF) -> tuple[SealingKey, dict[str, Any]]:
        """A new key (new salt) and the header that reopens it with the same passphrase."""
        salt = secrets.token_bytes(16)
        key = cls(kdf.derive(passphrase, salt))
        return key, {"kdf": "scrypt", "n": kdf.n, "r": kdf.r, "p": kdf.p, "salt": salt.hex(), "check": key._check()}

    @classmethod
    def open(cls, passphrase: str, header: Any, where: str) -> SealingKey:
        """Reopen the key from ``header``; a wrong passphrase is refused here, before anything is read."""
        try:
            kdf = Kdf(int(header["n"]), int(header["r"]), int(header["p"]))
            salt = bytes.fromhex(str(header["salt"]))
            check = str(header["check"])
        except (KeyError, TypeError, ValueError):
            raise CentralError(f"{where}: its encryption header is malformed") from None
        key = cls(kdf.derive(passphrase, salt))
        if not hmac.compare_digest(key._check(), check):
            raise CentralError(f"{where}: the central passphrase does not open it (mistyped?); nothing was read")
        return key

    def _subkey(self, purpose: str) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=None, info=b"rfr/central/sealed/" + purpose.encode()).derive(self._master)

    def _check(self) -> str:
        return hmac.new(self._subkey("check"), _CHECK_LABEL, hashlib.sha256).hexdigest()

    def seal(self, purpose: str, context: bytes, data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return MAGIC + nonce + AESGCM(self._subkey(purpose)).encrypt(nonce, data, MAGIC + context)

    def unseal(self, purpose: str, context: bytes, blob: bytes, where: str) -> bytes:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _NONCE + 16:
            raise CentralError(f"{where} is not a sealed central file, or is truncated")
        nonce = blob[len(MAGIC) : len(MAGIC) + _NONCE]
        try:
            return AESGCM(self._subkey(purpose)).decrypt(nonce, blob[len(MAGIC) + _NONCE :], MAGIC + context)
        except InvalidTag:
            raise CentralError(
                f"{where} fails its authentication: altered, truncated, or from another enrolment; remove it and "
                "run the command again to redo that part"
            ) from None


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temporary file, fsync, rename, fsync of the folder)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temporary, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_temporaries(directory: Path) -> None:
    """Temporary files left by a crash in the middle of ``write_atomic``: never a finished file, so removed."""
    for leftover in directory.glob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)
