"""The oversight key pair: X25519, the public half given to every terminal, the private half under a passphrase.

Terminals encrypt audit bundles to the public key (``engine.audit.bundle.seal``); only the
oversight's private key opens them. The private key file is PKCS#8 PEM encrypted with the
passphrase (``BestAvailableEncryption``: scrypt and AES-256-CBC in cryptography's choice of
the day), owner-only, never overwritten; the passphrase comes from ``RFR_OVERSIGHT_PASSPHRASE``
or a prompt, never argv. The public key file is PEM SubjectPublicKeyInfo, readable by anyone.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.audit.bundle import oversight_key_id
from engine.errors import KeySourceError
from engine.files import read_regular_file, write_new_file

PASSPHRASE_ENV = "RFR_OVERSIGHT_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
MIN_PASSPHRASE = 12
MAX_KEY_FILE_BYTES = 16 * 1024


def create_key_pair(private_file: Path, public_file: Path, passphrase: str) -> str:
    """Make a new oversight key pair: both files new (never overwritten); returns the key id (sha256 of the public)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeySourceError(f"the oversight key passphrase needs at least {MIN_PASSPHRASE} characters")
    for path in (private_file, public_file):
        if Path(path).exists() or Path(path).is_symlink():
            raise KeySourceError(f"{path} already exists: oversight key files are never overwritten")
    private = X25519PrivateKey.generate()
    sealed = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_new_file(Path(private_file), sealed, what="oversight private key file", error=KeySourceError)
    try:
        write_new_file(Path(public_file), public, what="oversight public key file", error=KeySourceError, mode=0o644)
    except BaseException:
        Path(private_file).unlink(missing_ok=True)
        raise
    return oversight_key_id(private.public_key())


def read_private_key(path: Path, passphrase: str) -> X25519PrivateKey:
    """The oversight's private key from its passphrase-encrypted file; a wrong passphrase is named as such."""
    data = read_regular_file(
        Path(path), limit=MAX_KEY_FILE_BYTES, what="oversight private key file", error=KeySourceError, private=True
    )
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise KeySourceError(
            f"{path} is not a passphrase-protected oversight private key: give the file 'rfr oversight keys init' made"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode("utf-8"))
    except ValueError:
        raise KeySourceError(f"the passphrase does not open the oversight private key {path}") from None
    except TypeError:
        raise KeySourceError(f"{path} is not a passphrase-protected oversight private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise KeySourceError(f"{path} holds another kind of key, not the oversight's X25519 key")
    return key
