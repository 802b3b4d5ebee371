"""The oversight key pair: the private half only under its passphrase, owner-only, never overwritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.audit.bundle import load_oversight_public_key, oversight_key_id
from engine.errors import AuditError, KeySourceError
from engine.oversight.keys import create_key_pair, read_private_key

PASSPHRASE = "a long oversight passphrase"


def test_the_key_pair(tmp_path: Path) -> None:
    private, public = tmp_path / "oversight.key", tmp_path / "oversight.pub"
    key_id = create_key_pair(private, public, PASSPHRASE)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600 and stat.S_IMODE(os.stat(public).st_mode) == 0o644
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes() and PASSPHRASE.encode() not in private.read_bytes()
    opened = read_private_key(private, PASSPHRASE)
    assert (
        oversight_key_id(opened.public_key())
        == key_id
        == oversight_key_id(load_oversight_public_key(public.read_bytes()))
    )
    with pytest.raises(KeySourceError, match="the passphrase does not open the oversight private key"):
        read_private_key(private, PASSPHRASE + "!")
    with pytest.raises(KeySourceError, match="already exists: oversight key files are never overwritten"):
        create_key_pair(private, tmp_path / "other.pub", PASSPHRASE)
    with pytest.raises(KeySourceError, match="needs at least 12 characters"):
        create_key_pair(tmp_path / "a", tmp_path / "b", "short")
    assert not (tmp_path / "a").exists() and not (tmp_path / "other.pub").exists()


def test_keys_that_are_not_the_oversights(tmp_path: Path) -> None:
    plain = tmp_path / "plain.key"
    plain.write_bytes(
        X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    plain.chmod(0o600)
    with pytest.raises(KeySourceError, match="is not a passphrase-protected oversight private key"):
        read_private_key(plain, PASSPHRASE)
    private, public = tmp_path / "o.key", tmp_path / "o.pub"
    create_key_pair(private, public, PASSPHRASE)
    private.chmod(0o644)
    with pytest.raises(KeySourceError, match="can be read by other users"):
        read_private_key(private, PASSPHRASE)
    with pytest.raises(AuditError, match="not a PEM public key"):
        load_oversight_public_key(b"not a key")
    with pytest.raises(AuditError, match="another kind of key, not X25519"):
        from engine.audit import AuditSigningKey, public_key_pem

        load_oversight_public_key(public_key_pem(AuditSigningKey.generate().public_key).encode())
