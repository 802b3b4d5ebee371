"""Targets on removable media are sealed with the force's media key: nothing on a medium is readable without it.

Custody images, template arrays, package manifests (subject references, dates of birth), first
password hashes, policies and models all travel sealed. TUF signs and hashes the sealed bytes;
the terminal checks those hashes as it copies a file and opens the seal in the same streaming
pass (``engine.media.apply``), so a lost or stolen medium gives its finder nothing but sizes.

- **The media key** is 32 random bytes, one per force, made by ``rfr central keys init`` (kept in
  the central keys folder sealed under the central passphrase) and handed to each of the force's
  terminals as a key file (``rfr central keys media-key``; the terminal's ``media_key_file``),
  like the workspace key: the rfr service account reads it, people never do. Its id (a hash of
  a subkey, never of the key itself) is in every sealed file, so a terminal holding another
  key says so instead of reporting tampering.
- **Blob names** are ``blobs/<HMAC-SHA256 of the plaintext under a names subkey>``: a name still
  pins its content (the terminal recomputes it from what it opened and refuses a difference),
  but says nothing to whoever holds the medium (a plain SHA-256 would let anyone holding a copy
  of an image confirm that it is on the medium).
- **The seal** is the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizar, CRYPTO 2015)
  over AES-256-GCM, so files of any size are opened in bounded memory: a header (``RFRMEDIA``,
  version, key id, a 16-byte salt), then the plaintext in chunks of ``CHUNK`` bytes, chunk
  ``i`` sealed under the file key (HKDF-SHA256 of the media key with the salt) with the nonce
  ``i`` (11 bytes) || last-chunk flag (1 byte) and the header and the target's path as associated
  data. Chunks reordered, dropped, repeated or cut short, a file moved to another path, or a
  file sealed under another key are all refused. The salt is a keyed hash of the path and the
  content (as in SIV): the same file sealed twice is the same bytes, so a blob shared by two
  packages is one target, never two versions of one, and two different files never share a
  file key (and so never a nonce).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import RfrError
from engine.files import read_regular_file, write_new_file
from engine.media.fetcher import MediaRefused

KEY_BYTES = 32
CHUNK = 1 << 20
MAGIC = b"RFRMEDIA"
VERSION = 1
_ID_BYTES = 8
_SALT = 16
_TAG = 16
HEADER = len(MAGIC) + 1 + _ID_BYTES + _SALT
KEY_FILE_FORMAT = "rfr media key 1"
_MAX_KEY_FILE = 4096


def _chunks(plain: int) -> int:
    """How many chunks hold ``plain`` bytes (an empty file is one empty final chunk)."""
    return max(1, -(-plain // CHUNK))


def sealed_length(plain: int) -> int:
    """The length of a sealed file holding ``plain`` bytes."""
    return HEADER + plain + _chunks(plain) * _TAG


class MediaKey:
    """A force's media key: seals targets on the central unit, opens them on its terminals."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError("a media key is 32 bytes")
        self._secret = bytes(secret)
        self._names = self._subkey(b"names")
        self.key_id = hashlib.sha256(self._subkey(b"id")).hexdigest()[: 2 * _ID_BYTES]

    @classmethod
    def generate(cls) -> MediaKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def __repr__(self) -> str:
        return f"MediaKey(<secret>, id {self.key_id})"

    __str__ = __repr__

    def secret_bytes(self) -> bytes:
        """The key itself, for sealing it into the central keys folder."""
        return self._secret

    def _subkey(self, purpose: bytes, salt: bytes | None = None) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=salt, info=b"rfr/media/" + purpose).derive(self._secret)

    # names

    def namer(self) -> hmac.HMAC:
        """A running blob name: ``update`` it with the plaintext; its hex digest is the name (as ``name_of``)."""
        return hmac.new(self._names, digestmod=hashlib.sha256)

    def name_of(self, data: bytes) -> str:
        """The name (64 hex digits) a blob with this plaintext has on the media."""
        namer = self.namer()
        namer.update(data)
        return namer.hexdigest()

    # sealing

    def seal(self, path: str, data: bytes) -> bytes:
        """``data`` sealed as the target ``path``."""
        salter = hmac.new(self._subkey(b"salt"), path.encode("utf-8") + b"\x00", hashlib.sha256)
        salter.update(data)
        header = MAGIC + bytes([VERSION]) + bytes.fromhex(self.key_id) + salter.digest()[:_SALT]
        aead = AESGCM(self._subkey(b"stream", header[-_SALT:]))
        associated = header + path.encode("utf-8")
        view = memoryview(data)
        count = _chunks(len(data))
        parts = [header]
        for i in range(count):
            parts.append(aead.encrypt(_nonce(i, i == count - 1), bytes(view[i * CHUNK : (i + 1) * CHUNK]), associated))
        return b"".join(parts)

    def opener(self, path: str) -> Opener:
        """A streaming opener for the sealed target ``path``: ``feed`` it what is read, then ``finish``."""
        return Opener(self, path)

    def open(self, path: str, sealed: bytes) -> bytes:
        """A whole sealed target opened (small files: manifests, policies, model manifests)."""
        opener = self.opener(path)
        return opener.feed(sealed) + opener.finish()

    # the terminal's key file

    def write_key_file(self, path: Path, *, error: type[RfrError] = MediaRefused) -> None:
        """The key file a terminal is given: a new file, readable by its owner only (never over another)."""
        text = json.dumps({"format": KEY_FILE_FORMAT, "id": self.key_id, "key": self._secret.hex()}, indent=1)
        write_new_file(Path(path), text.encode("ascii") + b"\n", what="media key file", error=error)


def read_media_key_file(path: Path) -> MediaKey:
    """A terminal's media key file: a regular file only its owner can read, naming the key it holds."""
    raw = read_regular_file(Path(path), limit=_MAX_KEY_FILE, what="media key file", error=MediaRefused, private=True)
    try:
        data = json.loads(raw.decode("ascii"))
        if data["format"] != KEY_FILE_FORMAT:
            raise ValueError
        key = MediaKey(bytes.fromhex(str(data["key"])))
        stated = str(data["id"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise MediaRefused(
            f"media key file {path} is not a media key: install the file 'rfr central keys media-key' wrote"
        ) from None
    if stated != key.key_id:
        raise MediaRefused(f"media key file {path} is damaged (its key is not the id it names): install it again")
    return key


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Opener:
    """Opens one sealed target as its bytes arrive, in memory bounded by two chunks whatever the file's size."""

    def __init__(self, key: MediaKey, path: str) -> None:
        self._key = key
        self._path = path
        self._buffer = bytearray()
        self._aead: AESGCM | None = None
        self._associated = b""
        self._index = 0

    def feed(self, data: bytes | memoryview) -> bytes:
        """The plaintext of every chunk that can be opened now (the last is held back until ``finish``)."""
        self._buffer += data
        if self._aead is None:
            if len(self._buffer) < HEADER:
                return b""
            self._start(bytes(self._buffer[:HEADER]))
            del self._buffer[:HEADER]
        out = []
        whole = CHUNK + _TAG
        at = 0
        with memoryview(self._buffer) as view:
            while len(self._buffer) - at > whole:  # more than a chunk left: this one cannot be the last
                out.append(self._open(view[at : at + whole], last=False))
                at += whole
        del self._buffer[:at]
        return b"".join(out)

    def finish(self) -> bytes:
        """The last chunk's plaintext; a file cut short or with anything after its last chunk is refused."""
        if self._aead is None or len(self._buffer) < _TAG:
            raise MediaRefused(f"{self._path} is not a sealed target, or is cut short: medium refused")
        last = self._open(bytes(self._buffer), last=True)
        self._buffer.clear()
        return last

    def _start(self, header: bytes) -> None:
        if header[: len(MAGIC)] != MAGIC or header[len(MAGIC)] != VERSION:
            raise MediaRefused(f"{self._path} is not sealed with a media key: medium refused")
        key_id = header[len(MAGIC) + 1 : len(MAGIC) + 1 + _ID_BYTES].hex()
        if key_id != self._key.key_id:
            raise MediaRefused(
                f"{self._path} is sealed with media key {key_id}; this terminal holds media key "
                f"{self._key.key_id}: install the force's current media key file, then read the medium again"
            )
        self._aead = AESGCM(self._key._subkey(b"stream", header[-_SALT:]))
        self._associated = header + self._path.encode("utf-8")

    def _open(self, chunk: bytes | memoryview, *, last: bool) -> bytes:
        assert self._aead is not None
        try:
            plain = self._aead.decrypt(_nonce(self._index, last), chunk, self._associated)
        except InvalidTag:
            raise MediaRefused(
                f"{self._path} does not open with the media key: altered, cut short or moved from another "
                "target: medium refused"
            ) from None
        self._index += 1
        return plain
