"""The workspace key: derivation, key files, passphrase sources, and never showing the key."""

from __future__ import annotations

import io
import logging
import os
import pickle
import stat
from pathlib import Path

import pytest

from engine.errors import KeySourceError, WorkspaceError
from engine.security.keys import (
    KEY_BYTES,
    KdfSpec,
    WorkspaceKey,
    new_key,
    obtain_key,
    read_key_file,
    read_passphrase,
)

FAST = 2**10  # scrypt cost for tests only; the default is 2**17


def fast_spec() -> KdfSpec:
    return KdfSpec.new_scrypt(n=FAST)


class TestWorkspaceKey:
    def test_never_shows_its_bytes(self, caplog: pytest.LogCaptureFixture) -> None:
        raw = bytes(range(KEY_BYTES))
        key = WorkspaceKey(raw, KdfSpec.key_file())
        shown = [repr(key), str(key), f"{key}", f"{key!r}", str([key]), str({"k": key})]
        logging.getLogger("test").warning("opened with %s", key)
        shown.append(caplog.text)
        for text in shown:
            assert raw.hex() not in text
            assert "redacted" in text or text == caplog.text
            assert str(list(raw[:4]))[1:-1] not in text

    def test_cannot_be_pickled(self) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(WorkspaceKey.generate())

    def test_wrong_length_refused(self) -> None:
        with pytest.raises(KeySourceError, match="32 bytes"):
            WorkspaceKey(b"short", KdfSpec.key_file())

    def test_passphrase_derivation_is_deterministic_per_salt(self) -> None:
        spec = fast_spec()
        a = WorkspaceKey.from_passphrase("correct horse battery", spec)
        b = WorkspaceKey.from_passphrase("correct horse battery", spec)
        assert a == b
        assert a != WorkspaceKey.from_passphrase("correct horse batterz", spec)
        assert a != WorkspaceKey.from_passphrase("correct horse battery", fast_spec())  # new salt

    def test_subkeys_are_independent_of_each_other_and_of_the_key(self) -> None:
        raw = os.urandom(KEY_BYTES)
        key = WorkspaceKey(raw, KdfSpec.key_file())
        a = key.derive("rfr/a/v1")
        b = key.derive("rfr/b/v1")
        c = key.derive("rfr/a/v1", salt=b"s" * 16)
        d = key.derive("rfr/a/v1", context=b"x")
        assert len({a, b, c, d, raw}) == 5
        assert key.derive("rfr/a/v1") == a

    def test_check_value_matches_only_the_same_key(self) -> None:
        key = WorkspaceKey.generate()
        assert key.matches_check_value(key.check_value())
        assert not WorkspaceKey.generate().matches_check_value(key.check_value())
        assert key.check_value() not in (key.derive("rfr/sqlcipher/v1").hex(),)


class TestKdfSpec:
    def test_round_trip(self) -> None:
        spec = fast_spec()
        assert KdfSpec.from_json(spec.to_json()) == spec
        assert KdfSpec.from_json({"method": "key-file"}) == KdfSpec.key_file()

    @pytest.mark.parametrize(
        ("data", "match"),
        [
            ({"method": "rot13"}, "unknown key derivation"),
            ({"method": "scrypt", "salt": "00" * 16, "n": 1000, "r": 8, "p": 1}, "power of two"),
            ({"method": "scrypt", "salt": "00" * 16, "n": 2**30, "r": 8, "p": 1}, "power of two"),
            ({"method": "scrypt", "salt": "00" * 4, "n": 1024, "r": 8, "p": 1}, "salt"),
            ({"method": "scrypt", "salt": "zz", "n": 1024, "r": 8, "p": 1}, "malformed"),
            ({"method": "scrypt", "n": 1024}, "malformed"),
        ],
    )
    def test_damaged_header_refused(self, data: dict[str, object], match: str) -> None:
        with pytest.raises(WorkspaceError, match=match):
            KdfSpec.from_json(data)


class TestKeyFiles:
    def test_new_key_file_is_owner_only_and_round_trips(self, tmp_path: Path) -> None:
        path = tmp_path / "ws.key"
        key = new_key(new_key_file=path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_size == KEY_BYTES
        assert read_key_file(path) == key

    def test_never_overwrites(self, tmp_path: Path) -> None:
        path = tmp_path / "ws.key"
        path.write_bytes(b"precious")
        with pytest.raises(KeySourceError, match="already exists"):
            new_key(new_key_file=path)
        assert path.read_bytes() == b"precious"

    @pytest.mark.parametrize(
        ("content", "mode", "match"),
        [
            (os.urandom(31), 0o600, "not a workspace key"),
            (os.urandom(33), 0o600, "not a workspace key"),
            (os.urandom(32), 0o640, "chmod 600"),
            (os.urandom(32), 0o604, "chmod 600"),
        ],
        ids=["31-bytes", "33-bytes", "group-readable", "world-readable"],  # stable: the bytes differ each run
    )
    def test_bad_key_files_refused(self, tmp_path: Path, content: bytes, mode: int, match: str) -> None:
        path = tmp_path / "bad.key"
        path.write_bytes(content)
        path.chmod(mode)
        with pytest.raises(KeySourceError, match=match):
            read_key_file(path)

    def test_missing_key_file(self, tmp_path: Path) -> None:
        with pytest.raises(KeySourceError, match="does not exist"):
            read_key_file(tmp_path / "nope.key")

    def test_directory_is_not_a_key_file(self, tmp_path: Path) -> None:
        with pytest.raises(KeySourceError):
            read_key_file(tmp_path)


class TestPassphraseSources:
    def test_environment_first(self) -> None:
        asked: list[str] = []
        got = read_passphrase(env={"RFR_PASSPHRASE": "from the environment"}, prompt=lambda p: asked.append(p) or "x")
        assert got == "from the environment"
        assert asked == []

    def test_prompt_when_no_environment(self) -> None:
        assert read_passphrase(env={}, prompt=lambda _p: "typed at the prompt") == "typed at the prompt"

    def test_no_tty_no_environment_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        with pytest.raises(KeySourceError, match="RFR_PASSPHRASE"):
            read_passphrase(env={})

    def test_new_passphrase_asked_twice(self) -> None:
        answers = iter(["first passphrase!", "second passphrase"])
        with pytest.raises(KeySourceError, match="differ"):
            read_passphrase(confirm=True, env={}, prompt=lambda _p: next(answers))

    def test_new_passphrase_minimum_length(self) -> None:
        with pytest.raises(KeySourceError, match="at least 12"):
            read_passphrase(confirm=True, env={"RFR_PASSPHRASE": "short"})

    def test_empty_passphrase_refused(self) -> None:
        with pytest.raises(KeySourceError, match="empty"):
            read_passphrase(env={"RFR_PASSPHRASE": ""})

    def test_obtain_key_follows_the_header(self, tmp_path: Path) -> None:
        spec = fast_spec()
        key = obtain_key(spec, None, env={"RFR_PASSPHRASE": "a long enough passphrase"})
        assert key == WorkspaceKey.from_passphrase("a long enough passphrase", spec)
        with pytest.raises(KeySourceError, match="--key-file"):
            obtain_key(KdfSpec.key_file(), None, env={"RFR_PASSPHRASE": "x"})
        key_path = tmp_path / "k"
        new_key(new_key_file=key_path)
        with pytest.raises(KeySourceError, match="passphrase, not a key file"):
            obtain_key(spec, key_path, env={})
