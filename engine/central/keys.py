"""The central unit's signing keys: one Ed25519 key per TUF role, each in a passphrase-encrypted PKCS#8 PEM file.

Roles (``rfr central keys init DIR``): ``root`` (K of N keys, held offline by different people, each
with a passphrase of their own), ``timestamp``, ``snapshot`` and ``targets`` (the top-level targets
role, which only delegates), and the three delegated targets roles ``library`` (library packages),
``accounts`` (users and policy) and ``models``. The six online keys share the central passphrase
(``RFR_CENTRAL_PASSPHRASE`` or a prompt); root key ``i`` has its own (``RFR_CENTRAL_ROOT_PASSPHRASE_i``
or a prompt). Passphrases never come from argv.

A key file is a standard encrypted PKCS#8 PEM (``openssl pkey`` reads it) after a few header lines
naming the role, the key id and how the PEM password was made. OpenSSL encrypts PKCS#8 with
PBKDF2 at only 2,048 iterations, so the passphrase is first stretched with scrypt (the terminal's
cost, 2**17 x 8: 128 MiB and about a second per guess) and the result is the PEM password; the
salt and cost are in the header. The online keys share one salt because they share one
passphrase: the central unit derives it once per command, not once per key. Files are mode 0600
and never overwritten. ``DIR/public-keys.json`` lists every role's public key and id, and
``DIR/1.root.json`` is the first root metadata, signed by every root key: what terminals pin
(``rfr media trust``).
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

from engine.central import CentralError
from engine.central.sealed import DEFAULT_KDF, Kdf, SealingKey
from engine.files import fsync_dir, read_regular_file, write_new_file
from engine.media.sealing import KEY_BYTES, MediaKey

ONLINE_ROLES = ("timestamp", "snapshot", "targets", "library", "accounts", "models")
DELEGATED_ROLES = ("library", "accounts", "models")
TOP_ROLES = ("root", "timestamp", "snapshot", "targets")
PUBLIC_KEYS = "public-keys.json"
MEDIA_KEY = "media-key.json"
_MEDIA_KEY_FORMAT = "rfr central media key 1"
FIRST_ROOT = "1.root.json"
KEY_SUFFIX = ".key.pem"
MIN_PASSPHRASE = 12
MAX_ROOT_KEYS = 9
DEFAULT_ROOT_DAYS = 365
_HEADER = "rfr central signing key"
_MAX_KEY_FILE = 16 << 10
_ROOT_FILE = re.compile(r"^root-([1-9])\.key\.pem$")

PassphraseFor = Callable[[int, Path], str]
"""Asked for root key ``i`` (its number and file): the passphrase of the person holding it."""


def check_passphrase(passphrase: str, what: str) -> None:
    """Refuse a passphrase too short to protect a signing key (a stolen key file is guessed offline)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise CentralError(f"the {what} is too short: use at least {MIN_PASSPHRASE} characters (a sentence is fine)")


def key_file_name(role: str, number: int | None = None) -> str:
    return f"root-{number}{KEY_SUFFIX}" if role == "root" else f"{role}{KEY_SUFFIX}"


def key_id(public_key: Any) -> str:
    return SSlibKey.from_crypto(public_key).keyid


# Key files


def _write_key_file(
    path: Path, role: str, private_key: Ed25519PrivateKey, password: bytes, salt: bytes, kdf: Kdf
) -> str:
    keyid = key_id(private_key.public_key())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    header = (
        f"{_HEADER}\nrole: {role}\nkeyid: {keyid}\nkdf: scrypt n={kdf.n} r={kdf.r} p={kdf.p} salt={salt.hex()}\n\n"
    ).encode("ascii")
    write_new_file(path, header + pem, what="key file", error=CentralError)
    return keyid


@dataclass(frozen=True)
class _KeyFile:
    path: Path
    role: str
    keyid: str
    kdf: Kdf
    salt: bytes
    pem: bytes


def _read_key_file(path: Path) -> _KeyFile:
    data = read_regular_file(path, limit=_MAX_KEY_FILE, what="key file", error=CentralError, private=True)
    head, marker, rest = data.partition(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    fields: dict[str, str] = {}
    lines = head.decode("ascii", errors="replace").splitlines()
    for line in lines[1:]:
        name, sep, value = line.partition(": ")
        if sep:
            fields[name.strip()] = value.strip()
    kdf_match = re.fullmatch(r"scrypt n=(\d+) r=(\d+) p=(\d+) salt=([0-9a-f]{32,128})", fields.get("kdf", ""))
    if not marker or not lines or lines[0] != _HEADER or kdf_match is None or "role" not in fields:
        raise CentralError(f"key file {path} is not an rfr central signing key (made by 'rfr central keys init')")
    n, r, p, salt = kdf_match.groups()
    return _KeyFile(
        path, fields["role"], fields.get("keyid", ""), Kdf(int(n), int(r), int(p)), bytes.fromhex(salt), marker + rest
    )


def _open_key(key: _KeyFile, password: bytes, what: str) -> CryptoSigner:
    try:
        private = serialization.load_pem_private_key(key.pem, password)
    except ValueError:
        raise CentralError(
            f"key file {key.path}: the {what} does not open it (a mistyped passphrase, or another key's file); "
            "nothing was signed"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise CentralError(f"key file {key.path} does not hold an Ed25519 key")
    signer = CryptoSigner(private)
    if key.keyid and signer.public_key.keyid != key.keyid:
        raise CentralError(f"key file {key.path}: its key is not the one its header names; the file was altered")
    return signer


# Public keys


@dataclass(frozen=True)
class PublicKeys:
    """Every role's public keys (``SSlibKey``), and the root threshold: ``DIR/public-keys.json``."""

    keys: dict[str, tuple[SSlibKey, ...]]
    root_threshold: int

    def one(self, role: str) -> SSlibKey:
        return self.keys[role][0]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "note": "Public keys of the central unit's TUF roles. Terminals pin 1.root.json (rfr media trust); "
            "compare its key ids with these, read aloud or printed, when a terminal is installed.",
            "root_threshold": self.root_threshold,
            "roles": {role: [{"keyid": k.keyid, "key": k.to_dict()} for k in keys] for role, keys in self.keys.items()},
        }

    @classmethod
    def load(cls, directory: Path) -> PublicKeys:
        path = directory / PUBLIC_KEYS
        raw = read_regular_file(path, limit=1 << 20, what="public keys file", error=CentralError)
        try:
            doc = json.loads(raw)
            keys = {
                role: tuple(SSlibKey.from_dict(entry["keyid"], dict(entry["key"])) for entry in entries)
                for role, entries in doc["roles"].items()
            }
            threshold = int(doc["root_threshold"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CentralError(f"public keys file {path} is malformed: make the keys again or restore it") from None
        missing = [role for role in (*TOP_ROLES, *DELEGATED_ROLES) if not keys.get(role)]
        if missing:
            raise CentralError(f"public keys file {path} has no key for role {missing[0]!r}")
        return cls(keys, threshold)


# The key ring: opens keys as they are needed


class KeyRing:
    """The central unit's keys in ``directory``, opened when first needed, each passphrase asked at most once.

    ``passphrase`` gives the central passphrase (the online keys); ``root_passphrase`` that of root
    key ``i``. ``root_key_files`` are where the root keys are (default: ``root-*.key.pem`` in the
    directory); root keys are offline and often brought one by one by the people who hold them.
    """

    def __init__(
        self,
        directory: Path,
        passphrase: Callable[[], str],
        root_passphrase: PassphraseFor | None = None,
        root_key_files: Sequence[Path] = (),
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CentralError(f"key folder {self.directory} does not exist: run 'rfr central keys init' first")
        self.public = PublicKeys.load(self.directory)
        self._passphrase = passphrase
        self._root_passphrase = root_passphrase
        self._root_files = tuple(root_key_files)
        self._derived: dict[tuple[bytes, Kdf], bytes] = {}
        self._signers: dict[str, CryptoSigner] = {}
        self._media_key: MediaKey | None = None

    def media_key(self) -> MediaKey:
        """The force's media key, which seals every target a package puts on the media (central passphrase)."""
        if self._media_key is None:
            self._media_key = open_media_key(self.directory, self._passphrase())
        return self._media_key

    def signer(self, role: str) -> CryptoSigner:
        """The signer of an online role, checked against the public keys file."""
        if role not in ONLINE_ROLES:
            raise CentralError(f"{role!r} is not an online role")
        if role not in self._signers:
            key = _read_key_file(self.directory / key_file_name(role))
            if key.role != role:
                raise CentralError(f"key file {key.path} is the {key.role} key, not the {role} key")
            cache = (key.salt, key.kdf)
            if cache not in self._derived:
                self._derived[cache] = key.kdf.derive(self._passphrase(), key.salt).hex().encode("ascii")
            signer = _open_key(key, self._derived[cache], "central passphrase")
            if signer.public_key.keyid != self.public.one(role).keyid:
                raise CentralError(f"key file {key.path} is not the {role} key named in {PUBLIC_KEYS}")
            self._signers[role] = signer
        return self._signers[role]

    def root_signers(self, root: Root) -> list[CryptoSigner]:
        """Enough root keys to meet ``root``'s threshold, opened one at a time (each asks its holder)."""
        wanted = root.roles[Root.type]
        files = self._root_files or tuple(sorted(p for p in self.directory.iterdir() if _ROOT_FILE.fullmatch(p.name)))
        signers: list[CryptoSigner] = []
        for path in files:
            if len(signers) >= wanted.threshold:
                break
            key = _read_key_file(path)
            if key.role != "root" or key.keyid not in wanted.keyids:
                continue
            match = _ROOT_FILE.fullmatch(path.name)
            number = int(match.group(1)) if match else len(signers) + 1
            if self._root_passphrase is None:
                raise CentralError("root keys are needed, and no way to ask for their passphrases was given")
            password = key.kdf.derive(self._root_passphrase(number, path), key.salt).hex().encode("ascii")
            signers.append(_open_key(key, password, f"passphrase of root key {number}"))
        if len(signers) < wanted.threshold:
            raise CentralError(
                f"root needs {wanted.threshold} root key(s) and {len(signers)} were found: give each with"
                " --root-key FILE"
            )
        return signers


# Making keys and the first root


@dataclass(frozen=True)
class KeysMade:
    directory: Path
    public: PublicKeys
    root_file: Path
    root_expires: datetime
    media_key_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "media_key_id": self.media_key_id,
            "root_threshold": self.public.root_threshold,
            "keyids": {role: [k.keyid for k in keys] for role, keys in self.public.keys.items()},
            "root": str(self.root_file),
            "root_expires": self.root_expires.isoformat().replace("+00:00", "Z"),
        }


def init_keys(
    directory: Path,
    passphrase: str,
    root_passphrases: Sequence[str],
    *,
    root_threshold: int = 1,
    root_days: int = DEFAULT_ROOT_DAYS,
    kdf: Kdf = DEFAULT_KDF,
    now: datetime | None = None,
) -> KeysMade:
    """Make every role's key in the new folder ``directory``, its public keys file and root metadata version 1."""
    directory = Path(directory)
    count = len(root_passphrases)
    if not 1 <= count <= MAX_ROOT_KEYS:
        raise CentralError(f"--root-keys must be between 1 and {MAX_ROOT_KEYS}")
    if not 1 <= root_threshold <= count:
        raise CentralError(f"--root-threshold must be between 1 and the number of root keys ({count})")
    if not 1 <= root_days <= 3660:
        raise CentralError("the root expiry must be between 1 and 3660 days")
    check_passphrase(passphrase, "central passphrase")
    for number, root_passphrase in enumerate(root_passphrases, start=1):
        check_passphrase(root_passphrase, f"passphrase of root key {number}")
        if hmac.compare_digest(root_passphrase.encode(), passphrase.encode()):
            raise CentralError(f"the passphrase of root key {number} must differ from the central passphrase")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise CentralError(f"key folder {directory} already exists and is not empty: keys are never overwritten")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)

    keys: dict[str, list[SSlibKey]] = {}
    online_salt = secrets.token_bytes(16)
    online_password = kdf.derive(passphrase, online_salt).hex().encode("ascii")
    for role in ONLINE_ROLES:
        private = Ed25519PrivateKey.generate()
        _write_key_file(directory / key_file_name(role), role, private, online_password, online_salt, kdf)
        keys[role] = [SSlibKey.from_crypto(private.public_key())]
    root_signers: list[CryptoSigner] = []
    for number, root_passphrase in enumerate(root_passphrases, start=1):
        salt = secrets.token_bytes(16)
        private = Ed25519PrivateKey.generate()
        password = kdf.derive(root_passphrase, salt).hex().encode("ascii")
        _write_key_file(directory / key_file_name("root", number), "root", private, password, salt, kdf)
        root_signers.append(CryptoSigner(private))
    keys["root"] = [s.public_key for s in root_signers]
    media_key = MediaKey.generate()
    _write_media_key(directory, media_key, passphrase, kdf)
    public = PublicKeys({role: tuple(keys[role]) for role in (*TOP_ROLES, *DELEGATED_ROLES)}, root_threshold)
    write_new_file(
        directory / PUBLIC_KEYS,
        json.dumps(public.to_json(), indent=1, sort_keys=True).encode("utf-8"),
        what="public keys file",
        error=CentralError,
        mode=0o644,
    )
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    root = new_root(public, moment + timedelta(days=root_days))
    for signer in root_signers:
        root.sign(signer, append=True)
    root_file = directory / FIRST_ROOT
    write_new_file(root_file, root_bytes(root), what="root metadata", error=CentralError, mode=0o644)
    fsync_dir(directory)
    return KeysMade(directory, public, root_file, root.signed.expires, media_key.key_id)


# The media key: sealed here under the central passphrase; terminals get it as a key file


def _write_media_key(directory: Path, key: MediaKey, passphrase: str, kdf: Kdf) -> None:
    sealing, header = SealingKey.create(passphrase, kdf)
    sealed = sealing.seal("media-key", key.key_id.encode("ascii"), key.secret_bytes())
    document = {"format": _MEDIA_KEY_FORMAT, "id": key.key_id, "kdf": header, "sealed": sealed.hex()}
    write_new_file(
        directory / MEDIA_KEY, json.dumps(document, indent=1).encode("ascii"), what="media key", error=CentralError
    )


def open_media_key(directory: Path, passphrase: str) -> MediaKey:
    """The media key in the keys folder ``directory``, opened with the central passphrase."""
    path = Path(directory) / MEDIA_KEY
    if not path.exists():
        raise CentralError(
            f"key folder {directory} has no media key ({MEDIA_KEY}): make the keys with 'rfr central keys init'"
        )
    raw = read_regular_file(path, limit=_MAX_KEY_FILE, what="media key", error=CentralError, private=True)
    try:
        document = json.loads(raw)
        if document["format"] != _MEDIA_KEY_FORMAT:
            raise ValueError
        key_id, header, sealed = str(document["id"]), document["kdf"], bytes.fromhex(str(document["sealed"]))
    except (ValueError, KeyError, TypeError):
        raise CentralError(f"{path} is not a central media key file: restore it from the keys' backup") from None
    secret = SealingKey.open(passphrase, header, str(path)).unseal(
        "media-key", key_id.encode("ascii"), sealed, str(path)
    )
    if len(secret) != KEY_BYTES or MediaKey(secret).key_id != key_id:
        raise CentralError(f"{path} does not hold the media key it names: restore it from the keys' backup")
    return MediaKey(secret)


def export_media_key(directory: Path, passphrase: str, out: Path) -> MediaKey:
    """Write the terminals' media key file ``out`` (new, 0600): installed on each of the force's terminals."""
    key = open_media_key(directory, passphrase)
    key.write_key_file(Path(out), error=CentralError)
    return key


def new_root(public: PublicKeys, expires: datetime) -> Metadata[Root]:
    """Root metadata version 1: the top-level roles' keys and thresholds, consistent snapshots on (unsigned)."""
    root = Root(version=1, expires=expires, consistent_snapshot=True)
    for role in TOP_ROLES:
        for key in public.keys[role]:
            root.add_key(key, role)
    root.roles[Root.type].threshold = public.root_threshold
    return Metadata(root)


def root_bytes(root: Metadata[Root]) -> bytes:
    return root.to_bytes(JSONSerializer(compact=False))


def renewed_root(current: Metadata[Root], keys: KeyRing, expires: datetime) -> Metadata[Root]:
    """The next root version, same keys, new expiry, signed by a threshold of the root keys."""
    signed = current.signed
    root = Metadata(
        Root(
            version=signed.version + 1,
            spec_version=signed.spec_version,
            expires=expires,
            keys=dict(signed.keys),
            roles=dict(signed.roles),
            consistent_snapshot=signed.consistent_snapshot,
        )
    )
    for signer in keys.root_signers(signed):
        root.sign(signer, append=True)
    current.signed.verify_delegate(Root.type, root.signed_bytes, root.signatures)
    return root
