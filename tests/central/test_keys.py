"""The central unit's signing keys: encrypted on disk, refused with a wrong passphrase, root K of N."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tuf.api.metadata import Metadata, Root

from engine.central import CentralError
from engine.central.keys import DELEGATED_ROLES, ONLINE_ROLES, KeyRing, init_keys, open_media_key
from engine.cli import main
from tests.central.conftest import CHEAP, PASSPHRASE, ROOT_PASSPHRASES, key_ring, make_keys


def test_every_role_has_an_encrypted_owner_only_key_file_and_root_one_pins_them(tmp_path: Path) -> None:
    made = make_keys(tmp_path / "keys", roots=3, threshold=2)
    files = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert files == sorted(
        ["1.root.json", "public-keys.json", "media-key.json", *(f"{r}.key.pem" for r in ONLINE_ROLES)]
        + [f"root-{i}.key.pem" for i in (1, 2, 3)]
    )
    for name in files:
        if name.endswith(".key.pem"):
            path = tmp_path / "keys" / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            text = path.read_text()
            assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text and "BEGIN PRIVATE KEY" not in text
            with pytest.raises((TypeError, ValueError)):  # no password, no key
                serialization.load_pem_private_key(text.encode(), None)
    # The media key: sealed under the central passphrase (its 32 bytes appear nowhere), owner-only, opened by it.
    media = tmp_path / "keys" / "media-key.json"
    assert stat.S_IMODE(media.stat().st_mode) == 0o600
    key = key_ring(tmp_path / "keys").media_key()
    assert key.key_id == made.media_key_id and key.secret_bytes().hex() not in media.read_text()
    with pytest.raises(CentralError, match="central passphrase does not open it"):
        open_media_key(tmp_path / "keys", "another passphrase entirely")
    root = Metadata[Root].from_bytes((tmp_path / "keys" / "1.root.json").read_bytes())
    assert root.signed.version == 1 and root.signed.consistent_snapshot
    assert root.signed.roles["root"].threshold == 2 and len(root.signed.roles["root"].keyids) == 3
    root.signed.verify_delegate("root", root.signed_bytes, root.signatures)
    public = json.loads((tmp_path / "keys" / "public-keys.json").read_text())
    assert public["root_threshold"] == 2
    for role in ("timestamp", "snapshot", "targets"):
        assert root.signed.roles[role].keyids == [made.public.one(role).keyid]
    assert set(public["roles"]) == {"root", "timestamp", "snapshot", "targets", *DELEGATED_ROLES}


def test_keys_open_as_signers_with_the_passphrase_and_sign(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    ring = key_ring(tmp_path / "keys")
    for role in ONLINE_ROLES:
        signer = ring.signer(role)
        assert signer.public_key.keyid == ring.public.one(role).keyid
        signature = signer.sign(b"payload")
        signer.public_key.verify_signature(signature, b"payload")


def test_a_wrong_passphrase_is_refused_in_one_line_naming_the_file(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    ring = KeyRing(tmp_path / "keys", lambda: "not the central passphrase")
    with pytest.raises(CentralError, match=r"library\.key\.pem: the central passphrase does not open it") as caught:
        ring.signer("library")
    assert "\n" not in caught.value.diagnostics()
    root = Metadata[Root].from_bytes((tmp_path / "keys" / "1.root.json").read_bytes()).signed
    wrong_root = KeyRing(tmp_path / "keys", lambda: PASSPHRASE, lambda _n, _p: "a wrong root passphrase")
    with pytest.raises(CentralError, match="passphrase of root key 1 does not open it"):
        wrong_root.root_signers(root)


def test_a_root_threshold_needs_that_many_root_keys(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys", roots=3, threshold=2)
    root = Metadata[Root].from_bytes((tmp_path / "keys" / "1.root.json").read_bytes()).signed
    keys = tmp_path / "keys"
    assert len(key_ring(keys).root_signers(root)) == 2
    only_one = key_ring(keys, root_key_files=(keys / "root-3.key.pem",))
    with pytest.raises(CentralError, match="root needs 2 root key"):
        only_one.root_signers(root)
    two = key_ring(keys, root_key_files=(keys / "root-3.key.pem", keys / "root-1.key.pem"))
    assert {s.public_key.keyid for s in two.root_signers(root)} <= set(root.roles["root"].keyids)


@pytest.mark.parametrize(
    ("roots", "threshold", "central", "message"),
    [
        (("root one passphrase",), 2, PASSPHRASE, "root-threshold must be between 1 and the number of root keys"),
        (("root one passphrase",), 1, "short", "central passphrase is too short"),
        (("short",), 1, PASSPHRASE, "passphrase of root key 1 is too short"),
        ((PASSPHRASE,), 1, PASSPHRASE, "root key 1 must differ from the central passphrase"),
    ],
)
def test_bad_key_requests_are_refused_before_anything_is_written(
    tmp_path: Path, roots: tuple[str, ...], threshold: int, central: str, message: str
) -> None:
    with pytest.raises(CentralError, match=message):
        init_keys(tmp_path / "keys", central, roots, root_threshold=threshold, kdf=CHEAP)
    assert not (tmp_path / "keys").exists()


def test_keys_are_never_overwritten(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    before = (tmp_path / "keys" / "library.key.pem").read_bytes()
    with pytest.raises(CentralError, match="already exists and is not empty"):
        make_keys(tmp_path / "keys")
    assert (tmp_path / "keys" / "library.key.pem").read_bytes() == before


def test_a_tampered_key_file_is_refused(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys")
    path = tmp_path / "keys" / "models.key.pem"
    other = (tmp_path / "keys" / "accounts.key.pem").read_text()
    path.write_text(other.replace("role: accounts", "role: models"))
    with pytest.raises(CentralError, match=r"not the one its header names|not the models key"):
        key_ring(tmp_path / "keys").signer("models")


def test_the_command_takes_passphrases_from_the_environment_never_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("RFR_CENTRAL_ROOT_PASSPHRASE_1", ROOT_PASSPHRASES[0])
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["central", "keys", "init", str(tmp_path / "keys"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["root_threshold"] == 1 and len(out["keyids"]["root"]) == 1
    import os

    assert "RFR_CENTRAL_PASSPHRASE" not in os.environ and "RFR_CENTRAL_ROOT_PASSPHRASE_1" not in os.environ
    # With no passphrase and no terminal to ask at: one line, exit 2, nothing made.
    assert main(["central", "keys", "init", str(tmp_path / "more")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "set RFR_CENTRAL_PASSPHRASE" in err
    assert not (tmp_path / "more").exists()
