"""The terminal's audit signing key: an Ed25519 key in its own file, never in the workspace database.

Whoever holds the workspace key can read and write the database; if the signing key lived
there too (as it once did), they could rewrite the log and re-sign it. So the private key is
a separate file readable only by the terminal's service account (or, where a platform has
one, a sealed store); the database keeps only public keys and their fingerprints
(``audit_keys``), so anyone can verify and only the terminal can sign.

The file is PKCS#8 PEM ("BEGIN PRIVATE KEY"): self-describing, so it cannot be confused with
the 32-byte workspace key file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.errors import AuditError
from engine.files import read_regular_file, write_new_file

MAX_KEY_FILE_BYTES = 4096


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """sha256 (hex) of the raw 32-byte public key: the key's fingerprint, named in every signed head."""
    return hashlib.sha256(raw_public_bytes(public_key)).hexdigest()


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class AuditSigningKey:
    """The private half, opaque: it signs, and never shows its bytes in ``repr``, logs or pickles."""

    __slots__ = ("_private", "key_id", "public_key")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = private.public_key()
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def generate(cls) -> AuditSigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def read_file(cls, path: Path) -> AuditSigningKey:
        """Read the key file: a regular, owner-only file holding one Ed25519 private key (PKCS#8 PEM)."""
        data = read_regular_file(
            Path(path), limit=MAX_KEY_FILE_BYTES, what="audit signing key file", error=AuditError, private=True
        )
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise AuditError(
                f"audit signing key file {path} does not hold an audit signing key: give the file "
                "'rfr workspace init' made (--new-audit-key-file)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditError(f"audit signing key file {path} holds another kind of key, not Ed25519")
        return cls(key)

    def write_file(self, path: Path) -> None:
        """Write the key to a new owner-only file; an existing file is never overwritten."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_new_file(Path(path), pem, what="audit signing key file", error=AuditError)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @property
    def public_bytes(self) -> bytes:
        return raw_public_bytes(self.public_key)

    def __repr__(self) -> str:
        return f"AuditSigningKey(<private>, key_id={self.key_id[:16]})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an audit signing key cannot be pickled or copied out of the process")
