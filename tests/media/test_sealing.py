"""Sealing targets with the force's media key: what opens, what is refused, and the terminal's key file."""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from engine.media.fetcher import MediaRefused
from engine.media.sealing import CHUNK, HEADER, MediaKey, read_media_key_file, sealed_length
from engine.terminal import Terminal
from tests.media.conftest import World, media_config
from tests.terminals import FAST, PASSWORD, synthetic_faces

KEY = MediaKey.generate()
PATH = "blobs/" + "ab" * 32


def _open_in_pieces(key: MediaKey, path: str, sealed: bytes, seed: int) -> bytes:
    """Feed the sealed bytes in random pieces, as the medium's reads arrive."""
    rng = random.Random(seed)
    opener = key.opener(path)
    out, at = [], 0
    while at < len(sealed):
        step = rng.choice((1, 7, 4096, CHUNK - 3, CHUNK + 16, 3 * CHUNK))
        out.append(opener.feed(sealed[at : at + step]))
        at += step
    return b"".join(out) + opener.finish()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 5])
def test_any_size_opens_whole_or_in_pieces_and_has_its_stated_length(size: int) -> None:
    data = os.urandom(size)
    sealed = KEY.seal(PATH, data)
    assert len(sealed) == sealed_length(size)
    assert KEY.open(PATH, sealed) == data
    assert _open_in_pieces(KEY, PATH, sealed, seed=size) == data
    if size >= 64:
        assert data[:64] not in sealed  # sealed, not copied


def test_the_same_file_seals_to_the_same_bytes_and_different_files_never_share_a_salt() -> None:
    data = b"custody image bytes" * 100
    assert KEY.seal(PATH, data) == KEY.seal(PATH, data)
    other_path = KEY.seal("blobs/" + "cd" * 32, data)
    other_data = KEY.seal(PATH, data + b"!")
    salts = {s[HEADER - 16 : HEADER] for s in (KEY.seal(PATH, data), other_path, other_data)}
    assert len(salts) == 3


def test_names_are_keyed_so_a_medium_does_not_say_which_image_it_carries() -> None:
    import hashlib

    data = b"an image"
    assert KEY.name_of(data) == KEY.name_of(data) != hashlib.sha256(data).hexdigest()
    assert MediaKey.generate().name_of(data) != KEY.name_of(data)


def _chunks(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER:]
    return sealed[:HEADER], [body[i : i + CHUNK + 16] for i in range(0, len(body), CHUNK + 16)]


TAMPERING = {
    "last chunk dropped (cut at a chunk boundary)": lambda h, c: h + b"".join(c[:-1]),
    "chunks reordered": lambda h, c: h + c[1] + c[0] + b"".join(c[2:]),
    "a chunk repeated": lambda h, c: h + c[0] + b"".join(c),
    "one bit flipped": lambda h, c: h + bytes([c[0][0] ^ 1]) + c[0][1:] + b"".join(c[1:]),
    "data after the last chunk": lambda h, c: h + b"".join(c) + b"\x00" * 16,
    "cut inside the header": lambda h, c: h[:10],
    "another version": lambda h, c: h[:8] + b"\x02" + h[9:] + b"".join(c),
}


@pytest.mark.parametrize("name", TAMPERING)
def test_tampering_with_a_sealed_file_is_refused(name: str) -> None:
    sealed = KEY.seal(PATH, os.urandom(2 * CHUNK + 100))
    header, chunks = _chunks(sealed)
    altered = TAMPERING[name](header, chunks)
    with pytest.raises(MediaRefused, match="medium refused") as refused:
        _open_in_pieces(KEY, PATH, altered, seed=1)
    assert "\n" not in refused.value.diagnostics()


def test_a_file_moved_to_another_path_or_sealed_with_another_key_is_refused_saying_which() -> None:
    sealed = KEY.seal(PATH, b"policy text")
    with pytest.raises(MediaRefused, match="does not open with the media key"):
        KEY.open("blobs/" + "cd" * 32, sealed)
    other = MediaKey.generate()
    with pytest.raises(
        MediaRefused, match=f"sealed with media key {KEY.key_id}; this terminal holds media key {other.key_id}"
    ):
        other.open(PATH, sealed)


def test_the_key_file_is_owner_only_never_overwritten_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "media.key"
    KEY.write_key_file(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_media_key_file(path).key_id == KEY.key_id
    assert KEY.secret_bytes().hex() not in repr(KEY) and KEY.key_id in repr(KEY)
    with pytest.raises(MediaRefused, match="already exists"):
        MediaKey.generate().write_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(MediaRefused, match="can be read by other users"):
        read_media_key_file(path)
    damaged = tmp_path / "damaged.key"
    document = json.loads(path.read_text())
    document["id"] = "0" * 16
    damaged.write_text(json.dumps(document))
    os.chmod(damaged, 0o600)
    with pytest.raises(MediaRefused, match="damaged"):
        read_media_key_file(damaged)
    wrong = tmp_path / "workspace.key"
    wrong.write_bytes(os.urandom(32))
    os.chmod(wrong, 0o600)
    with pytest.raises(MediaRefused, match="is not a media key"):
        read_media_key_file(wrong)


def test_a_terminal_without_a_media_key_refuses_media_in_one_line(world: World) -> None:
    medium = world.medium()
    world.terminal.close()
    config = replace(media_config(world.ws.directory), media_key_file=None)
    with Terminal.open(config, faces=synthetic_faces(), scrypt=FAST, clock=world.clock) as terminal:
        session = terminal.sign_in("eng1", PASSWORD)
        with pytest.raises(MediaRefused, match=r"no media key configured.*'media_key_file'") as refused:
            terminal.media.read(session, medium)
        assert "\n" not in refused.value.diagnostics()
