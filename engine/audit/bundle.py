"""The audit bundle: a stretch of a terminal's signed log, as a DSSE envelope, encrypted to the oversight key.

A bundle covers the contiguous range ``first..last`` of one terminal's audit log. Its files:

- ``events.jsonl``: one line per event, every field as stored (``subjects`` and ``details`` as
  their stored JSON text, so each event's hash can be recomputed exactly);
- ``heads.json``: the signed heads (``audit_checkpoints``) from the one before the range (at
  ``first - 1``; none when ``first`` is 1) to the one at ``last``, and the log's public keys;
- ``figures.json``: the monitoring figures of the range by calendar quarter and the library
  composition (``engine.casework.monitoring.bundle_figures``; opaque at this layer).

An in-toto Statement v1 names each file with its sha256 as a subject, its predicate says which
terminal and which range; the Statement is the payload of a DSSE envelope
(``securesystemslib.dsse.Envelope``) signed by the terminal's audit key. Envelope and files
together (``container``) are then encrypted to the oversight's X25519 public key: an ephemeral
X25519 key per bundle, HKDF-SHA256 over the shared secret, AES-256-GCM with the whole header as
associated data. The file on the removable media is::

    MAGIC | sha256(oversight public key) 32 | ephemeral public key 32 | nonce 12 | ciphertext and tag

Reading is for hostile input: every size is bounded, every field's type checked, and every
problem raises ``BundleRefused`` with one line naming it. ``verify_bundle`` recomputes each event's
hash and link and checks each signed head with the terminal's keys, as ``engine.audit.verify``
does for a whole log (the same hash and signed-head functions), for a range that need not start
at seq 1.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signature

from engine.audit._encoding import canonical_json
from engine.audit.chain import event_hash
from engine.audit.checkpoints import Checkpoint
from engine.audit.clock import parse_utc
from engine.audit.signing import key_id_of
from engine.audit.store import GENESIS_HASH
from engine.errors import AuditError
from engine.files import fsync_dir

MAGIC = b"RFR-AUDIT-BUNDLE/1\n"
HEADER_BYTES = len(MAGIC) + 32 + 32 + 12
TAG_BYTES = 16
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://rfr.invalid/audit-bundle/v1"
CONTAINER_FORMAT = "rfr-audit-bundle"
CONTAINER_VERSION = 1
FILES = ("events.jsonl", "figures.json", "heads.json")
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_EVENTS = 1_000_000
MAX_KEYS = 64
MAX_FIELD_TEXT = 64 * 1024
SUFFIX = ".rfrbundle"

_HKDF_INFO = b"rfr/audit-bundle/v1 aes-256-gcm"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_WORKSPACE_ID = re.compile(r"^[0-9a-f]{1,64}$")
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
TERMINAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PREDICATE_KEYS = {
    "terminal",
    "workspace_id",
    "first_seq",
    "last_seq",
    "prev_hash",
    "head_hash",
    "events",
    "exported_at",
    "exported_by",
    "oversight_key_id",
    "software",
    "more_to_export",
}


class BundleRefused(AuditError):
    """An audit bundle cannot be accepted as it is; the message names what is wrong with it."""


# ---- the oversight key's public half (what a terminal is configured with) ------------------------


def load_oversight_public_key(data: bytes) -> X25519PublicKey:
    """The oversight's X25519 public key from PEM (SubjectPublicKeyInfo), as ``rfr oversight keys init`` writes it."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise AuditError(
            "the oversight public key file is not a PEM public key: give the file 'rfr oversight keys init' made"
        ) from None
    if not isinstance(key, X25519PublicKey):
        raise AuditError("the oversight public key file holds another kind of key, not X25519")
    return key


def raw_x25519(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def oversight_key_id(key: X25519PublicKey) -> str:
    """sha256 (hex) of the raw 32-byte oversight public key: named in every bundle's header."""
    return hashlib.sha256(raw_x25519(key)).hexdigest()


# ---- encryption to the oversight key -------------------------------------------------------------


def _bundle_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_HKDF_INFO).derive(shared)


def seal(plaintext: bytes, recipient: X25519PublicKey) -> bytes:
    """Encrypt ``plaintext`` to the oversight key: ephemeral X25519, HKDF-SHA256, AES-256-GCM (header as AAD)."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = raw_x25519(ephemeral.public_key())
    recipient_raw = raw_x25519(recipient)
    key = _bundle_key(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw)
    nonce = secrets.token_bytes(12)
    header = MAGIC + hashlib.sha256(recipient_raw).digest() + ephemeral_raw + nonce
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def recipient_of(data: bytes) -> str:
    """The oversight key id a bundle file says it is encrypted to (hex), after checking it is a bundle at all."""
    if len(data) < len(MAGIC) or not data.startswith(MAGIC):
        raise BundleRefused("this is not an rfr audit bundle (it does not start as one)")
    if len(data) < HEADER_BYTES + TAG_BYTES:
        raise BundleRefused(f"the bundle is truncated: {len(data)} bytes is too short to hold one")
    return data[len(MAGIC) : len(MAGIC) + 32].hex()


def unseal(data: bytes, private: X25519PrivateKey) -> bytes:
    """Decrypt a bundle file with the oversight's private key; any change to any byte is refused."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleRefused(f"the bundle is larger than {MAX_BUNDLE_BYTES:,} bytes: this is not an audit bundle")
    wanted = recipient_of(data)
    recipient_raw = raw_x25519(private.public_key())
    ours = hashlib.sha256(recipient_raw).hexdigest()
    if wanted != ours:
        raise BundleRefused(
            f"the bundle is encrypted to another oversight key ({wanted[:16]}), not this oversight's ({ours[:16]}): "
            "the terminal is configured with the wrong oversight public key"
        )
    at = len(MAGIC) + 32
    ephemeral_raw, nonce = data[at : at + 32], data[at + 32 : at + 44]
    header = data[:HEADER_BYTES]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        return AESGCM(_bundle_key(shared, ephemeral_raw, recipient_raw)).decrypt(nonce, data[HEADER_BYTES:], header)
    except (InvalidTag, ValueError):
        raise BundleRefused(
            "the bundle does not decrypt: it was truncated, damaged or altered after the terminal wrote it"
        ) from None


# ---- the DSSE envelope and its Statement ---------------------------------------------------------


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed (the same bytes as ``Envelope.pae``)."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def statement(files: Mapping[str, bytes], predicate: Mapping[str, Any]) -> bytes:
    """The in-toto Statement v1 naming each file by sha256, as canonical JSON."""
    subjects = [{"name": name, "digest": {"sha256": hashlib.sha256(files[name]).hexdigest()}} for name in sorted(files)]
    body = {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": dict(predicate)}
    return canonical_json(body).encode("ascii")


def container(payload: bytes, key_id: str, signature: bytes, files: Mapping[str, bytes]) -> bytes:
    """The plaintext of a bundle: the DSSE envelope (signed Statement) and the files it names."""
    envelope = Envelope(payload, PAYLOAD_TYPE, {key_id: Signature(key_id, signature.hex())})
    body = {
        "format": CONTAINER_FORMAT,
        "version": CONTAINER_VERSION,
        "envelope": envelope.to_dict(),
        "files": {name: base64.b64encode(data).decode("ascii") for name, data in sorted(files.items())},
    }
    return canonical_json(body).encode("ascii")


def event_line(
    seq: int, at: str, actor: str, action: str, subjects: str, details: str, prev: str, digest: str
) -> bytes:
    record = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subjects": subjects,
        "details": details,
        "prev_hash": prev,
        "hash": digest,
    }
    return canonical_json(record).encode("ascii") + b"\n"


def heads_file(checkpoints: Sequence[Checkpoint], keys: Sequence[tuple[str, bytes, int]]) -> bytes:
    body = {
        "checkpoints": [
            {
                "number": cp.number,
                "seq": cp.seq,
                "event_hash": cp.event_hash,
                "at": cp.at,
                "key_id": cp.key_id,
                "prev_digest": cp.prev_digest,
                "signature": cp.signature.hex(),
            }
            for cp in checkpoints
        ],
        "keys": [{"key_id": k, "public_key": raw.hex(), "introduced_seq": seq} for k, raw, seq in keys],
    }
    return canonical_json(body).encode("ascii")


def write_bundle_file(path: Path, data: bytes) -> None:
    """Publish ``data`` as a new file at ``path`` on removable media: never over an existing file, fsynced.

    Written under a hidden temporary name in the same folder, fsynced, then linked to its name
    (which fails if the name exists) and the temporary name removed. File systems without hard
    links (FAT, exFAT) get a rename after checking the name is free.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise AuditError(f"{path} already exists: an audit bundle is never written over another file")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temporary, flags, 0o600)
    except OSError as exc:
        raise AuditError(f"cannot write the audit bundle in {path.parent} ({exc.strerror or exc})") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise AuditError(f"{path} already exists: an audit bundle is never written over another file") from None
        except OSError:
            if path.exists():
                raise AuditError(f"{path} already exists: an audit bundle is never written over another file") from None
            os.rename(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)


# ---- reading a bundle (hostile input) ---------------------------------------------------------------


@dataclass(frozen=True)
class BundleEvent:
    """One event of a bundle, every field as the terminal stored it."""

    seq: int
    at: str
    actor: str
    action: str
    subjects: str
    details: str
    prev_hash: str
    hash: str

    def recomputed(self) -> str:
        return event_hash(self.seq, self.at, self.actor, self.action, self.subjects, self.details, self.prev_hash)


@dataclass(frozen=True)
class BundleKey:
    """A public key of the terminal's log, and the seq from which it signs (0: from the start)."""

    key_id: str
    public_key: Ed25519PublicKey
    introduced_seq: int


@dataclass(frozen=True)
class Predicate:
    """What the signed Statement says the bundle is."""

    terminal: str
    workspace_id: str
    first_seq: int
    last_seq: int
    prev_hash: str
    head_hash: str
    events: int
    exported_at: str
    exported_by: str
    oversight_key_id: str
    software: str
    more_to_export: bool


@dataclass(frozen=True)
class Bundle:
    """A decrypted bundle whose structure and file hashes are checked, not yet its signatures (``verify_bundle``)."""

    envelope: Envelope
    envelope_json: str
    statement_sha256: str
    predicate: Predicate
    files: dict[str, bytes]
    events: tuple[BundleEvent, ...]
    checkpoints: tuple[Checkpoint, ...]
    keys: tuple[BundleKey, ...]
    figures: dict[str, Any]

    @property
    def signer(self) -> str:
        return next(iter(self.envelope.signatures))

    @property
    def container(self) -> bytes:
        """The plaintext as received (envelope and files), kept as signed evidence."""
        body = {
            "format": CONTAINER_FORMAT,
            "version": CONTAINER_VERSION,
            "envelope": json.loads(self.envelope_json),
            "files": {name: base64.b64encode(data).decode("ascii") for name, data in sorted(self.files.items())},
        }
        return canonical_json(body).encode("ascii")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise BundleRefused(f"the bundle's {what} is not valid JSON") from None


def _field(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = mapping.get(key)
    if isinstance(value, bool) and kind is not bool:
        raise BundleRefused(f"the bundle's {what}: {key} is missing or not the right type")
    if not isinstance(value, kind):
        raise BundleRefused(f"the bundle's {what}: {key} is missing or not the right type")
    return value


def _hex64(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise BundleRefused(f"the bundle's {what} is not a sha256 (64 lowercase hex digits)")
    return value


def _time(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 27:
        raise BundleRefused(f"the bundle's {what} is not an audit time")
    try:
        parse_utc(value)
    except ValueError:
        raise BundleRefused(f"the bundle's {what} is not an audit time") from None
    return value


def _count(value: object, what: str, *, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 2**62:
        raise BundleRefused(f"the bundle's {what} is not a whole number of at least {least}")
    return value


KeysOf = Callable[[str], Mapping[str, Ed25519PublicKey] | None]
"""terminal name -> the audit keys the reader trusts for it (None: a terminal it does not know)."""


def read_bundle(plaintext: bytes, keys_of: KeysOf) -> Bundle:
    """The decrypted container, authenticated before its files are read.

    In order: the container, the DSSE envelope and its Statement are parsed; the terminal the
    Statement names must be known (``keys_of``); the envelope's signature must verify with that
    terminal's key (or, when the terminal handed over to a new key inside this bundle, with the
    key ``heads.json`` lists, trusted only if ``verify_bundle`` finds the hand-over signed);
    then every file's sha256 must match the Statement, and only then are the files parsed.
    """
    body = _json(plaintext, "container")
    if not isinstance(body, dict) or body.get("format") != CONTAINER_FORMAT:
        raise BundleRefused("the bundle's contents are not an rfr audit bundle")
    if body.get("version") != CONTAINER_VERSION:
        raise BundleRefused(f"the bundle is format version {str(body.get('version'))[:12]!r}; this rfr reads version 1")
    if set(body) != {"format", "version", "envelope", "files"}:
        raise BundleRefused("the bundle's contents hold unexpected parts")
    envelope, envelope_json = _envelope(body["envelope"])
    stated = _json(envelope.payload, "Statement")
    if not isinstance(stated, dict) or stated.get("_type") != STATEMENT_TYPE:
        raise BundleRefused("the bundle's envelope does not carry an in-toto Statement v1")
    if stated.get("predicateType") != PREDICATE_TYPE or set(stated) != {
        "_type",
        "subject",
        "predicateType",
        "predicate",
    }:
        raise BundleRefused("the bundle's Statement is not an rfr audit bundle statement")
    named = _subjects(stated["subject"])
    predicate = _predicate(stated["predicate"])
    files = _files(body["files"])

    trusted = keys_of(predicate.terminal)
    if trusted is None:
        raise BundleRefused(
            f"the bundle comes from terminal {predicate.terminal}, which is not registered here: an auditor registers "
            "it with its audit public key ('rfr oversight terminals add')"
        )
    signer = next(iter(envelope.signatures))
    key = trusted.get(signer)
    if key is None:  # perhaps a key the terminal handed over to inside this bundle: heads.json lists it
        _check_digest("heads.json", files, named)
        listed = {k.key_id: k.public_key for k in _heads(files["heads.json"])[1]}
        key = listed.get(signer)
    if key is None:
        raise BundleRefused(
            f"the bundle is not signed by terminal {predicate.terminal}'s audit key (it is signed by key "
            f"{signer[:16]}, which this oversight does not know for the terminal)"
        )
    try:
        key.verify(bytes.fromhex(envelope.signatures[signer].signature), envelope.pae())
    except Exception:  # cryptography's InvalidSignature, or ValueError for a malformed one
        raise BundleRefused(
            f"the bundle's DSSE signature does not verify with terminal {predicate.terminal}'s key {signer[:16]}: "
            "the envelope was altered or signed by someone else"
        ) from None
    for name in FILES:
        _check_digest(name, files, named)
    events = _events(files["events.jsonl"], predicate)
    checkpoints, keys = _heads(files["heads.json"])
    figures = _json(files["figures.json"], "figures.json")
    if not isinstance(figures, dict):
        raise BundleRefused("the bundle's figures.json is not an object")
    return Bundle(
        envelope,
        envelope_json,
        hashlib.sha256(envelope.payload).hexdigest(),
        predicate,
        files,
        events,
        checkpoints,
        keys,
        figures,
    )


def _envelope(raw: object) -> tuple[Envelope, str]:
    if not isinstance(raw, dict) or set(raw) != {"payload", "payloadType", "signatures"}:
        raise BundleRefused("the bundle's DSSE envelope is malformed")
    signatures = raw["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise BundleRefused("the bundle's DSSE envelope must carry exactly one signature (the terminal's)")
    if set(signatures[0]) != {"keyid", "sig"} or not all(isinstance(v, str) for v in signatures[0].values()):
        raise BundleRefused("the bundle's DSSE signature is malformed")
    if not isinstance(raw["payload"], str) or not isinstance(raw["payloadType"], str):
        raise BundleRefused("the bundle's DSSE envelope is malformed")
    envelope_json = canonical_json(raw)
    try:
        envelope = Envelope.from_dict(json.loads(envelope_json))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise BundleRefused("the bundle's DSSE envelope is malformed") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise BundleRefused(f"the bundle's envelope carries {envelope.payload_type[:40]!r}, not an in-toto Statement")
    signature = next(iter(envelope.signatures.values()))
    if not _HEX64.fullmatch(signature.keyid) or len(signature.signature) != 128:
        raise BundleRefused("the bundle's DSSE signature is not an Ed25519 signature by an audit key")
    return envelope, envelope_json


def _subjects(subjects: object) -> dict[str, str]:
    if not isinstance(subjects, list) or len(subjects) != len(FILES):
        raise BundleRefused(f"the bundle's Statement must name exactly the files {', '.join(FILES)}")
    named: dict[str, str] = {}
    for subject in subjects:
        if (
            not isinstance(subject, dict)
            or set(subject) != {"name", "digest"}
            or not isinstance(subject["digest"], dict)
            or set(subject["digest"]) != {"sha256"}
        ):
            raise BundleRefused("the bundle's Statement names a file malformed")
        named[str(subject["name"])] = _hex64(subject["digest"]["sha256"], "Statement digest")
    if set(named) != set(FILES):
        raise BundleRefused(f"the bundle's Statement must name exactly the files {', '.join(FILES)}")
    return named


def _files(files: object) -> dict[str, bytes]:
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise BundleRefused(f"the bundle must hold exactly the files {', '.join(FILES)}")
    decoded: dict[str, bytes] = {}
    for name in FILES:
        text = files[name]
        if not isinstance(text, str):
            raise BundleRefused(f"the bundle's file {name} is malformed")
        try:
            decoded[name] = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise BundleRefused(f"the bundle's file {name} is malformed") from None
    return decoded


def _check_digest(name: str, files: Mapping[str, bytes], named: Mapping[str, str]) -> None:
    actual = hashlib.sha256(files[name]).hexdigest()
    if actual != named[name]:
        raise BundleRefused(
            f"the bundle's file {name} does not match the signed Statement (sha256 {actual[:16]}, signed "
            f"{named[name][:16]}): it was altered"
        )


def _predicate(data: object) -> Predicate:
    if not isinstance(data, dict) or set(data) != _PREDICATE_KEYS:
        raise BundleRefused("the bundle's Statement predicate is not an rfr audit bundle predicate")
    what = "predicate"
    terminal = _field(data, "terminal", str, what)
    if not TERMINAL_NAME.fullmatch(terminal):
        raise BundleRefused("the bundle's predicate names no valid terminal")
    first = _count(data["first_seq"], "predicate first_seq", least=1)
    last = _count(data["last_seq"], "predicate last_seq", least=first)
    events = _count(data["events"], "predicate events", least=1)
    if events != last - first + 1 or events > MAX_EVENTS:
        raise BundleRefused(f"the bundle's predicate says {events} events for seq {first} to seq {last}")
    by = _field(data, "exported_by", str, what)
    software = _field(data, "software", str, what)
    workspace = _field(data, "workspace_id", str, what)
    if not (0 < len(by) <= 64 and len(software) <= 200 and by.isprintable() and software.isprintable()):
        raise BundleRefused("the bundle's predicate names its exporter or software wrongly")
    if not _WORKSPACE_ID.fullmatch(workspace):
        raise BundleRefused("the bundle's predicate names no valid workspace")
    return Predicate(
        terminal=terminal,
        workspace_id=workspace,
        first_seq=first,
        last_seq=last,
        prev_hash=_hex64(data["prev_hash"], "predicate prev_hash"),
        head_hash=_hex64(data["head_hash"], "predicate head_hash"),
        events=events,
        exported_at=_time(data["exported_at"], "predicate exported_at"),
        exported_by=by,
        oversight_key_id=_hex64(data["oversight_key_id"], "predicate oversight_key_id"),
        software=software,
        more_to_export=_field(data, "more_to_export", bool, what),
    )


def _events(data: bytes, predicate: Predicate) -> tuple[BundleEvent, ...]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != predicate.events:
        raise BundleRefused(f"events.jsonl holds {len(lines)} events; the Statement says {predicate.events}")
    out: list[BundleEvent] = []
    keys = {"seq", "at", "actor", "action", "subjects", "details", "prev_hash", "hash"}
    for i, line in enumerate(lines):
        expected = predicate.first_seq + i
        record = _json(line, f"event on line {i + 1}")
        if not isinstance(record, dict) or set(record) != keys:
            raise BundleRefused(f"the bundle's event on line {i + 1} is malformed")
        seq = _count(record["seq"], f"event on line {i + 1}: seq", least=1)
        if seq != expected:
            raise BundleRefused(f"the bundle's events are not contiguous: line {i + 1} is seq {seq}, not {expected}")
        actor, action = record["actor"], record["action"]
        subjects, details = record["subjects"], record["details"]
        if not isinstance(actor, str) or not 0 < len(actor) <= 64 or not actor.isprintable():
            raise BundleRefused(f"the bundle's event seq {seq}: actor is malformed")
        if not isinstance(action, str) or not _ACTION.fullmatch(action):
            raise BundleRefused(f"the bundle's event seq {seq}: action is malformed")
        for name, text in (("subjects", subjects), ("details", details)):
            if not isinstance(text, str) or len(text) > MAX_FIELD_TEXT or not isinstance(_json(text, name), dict):
                raise BundleRefused(f"the bundle's event seq {seq}: {name} is not a JSON object")
        out.append(
            BundleEvent(
                seq,
                _time(record["at"], f"event seq {seq} time"),
                actor,
                action,
                subjects,
                details,
                _hex64(record["prev_hash"], f"event seq {seq} prev_hash"),
                _hex64(record["hash"], f"event seq {seq} hash"),
            )
        )
    return tuple(out)


def _heads(data: bytes) -> tuple[tuple[Checkpoint, ...], tuple[BundleKey, ...]]:
    body = _json(data, "heads.json")
    if not isinstance(body, dict) or set(body) != {"checkpoints", "keys"}:
        raise BundleRefused("the bundle's heads.json is malformed")
    raw_checkpoints, raw_keys = body["checkpoints"], body["keys"]
    if not isinstance(raw_checkpoints, list) or not 0 < len(raw_checkpoints) <= MAX_EVENTS + 1:
        raise BundleRefused("the bundle's heads.json holds no signed heads")
    if not isinstance(raw_keys, list) or not 0 < len(raw_keys) <= MAX_KEYS:
        raise BundleRefused("the bundle's heads.json holds no audit keys")
    wanted = {"number", "seq", "event_hash", "at", "key_id", "prev_digest", "signature"}
    checkpoints: list[Checkpoint] = []
    for item in raw_checkpoints:
        if not isinstance(item, dict) or set(item) != wanted:
            raise BundleRefused("the bundle's heads.json holds a malformed signed head")
        signature = item["signature"]
        if not isinstance(signature, str) or len(signature) != 128:
            raise BundleRefused("the bundle's heads.json holds a malformed signature")
        try:
            signature_bytes = bytes.fromhex(signature)
        except ValueError:
            raise BundleRefused("the bundle's heads.json holds a malformed signature") from None
        checkpoints.append(
            Checkpoint(
                _count(item["number"], "signed head number", least=1),
                _count(item["seq"], "signed head seq", least=1),
                _hex64(item["event_hash"], "signed head event_hash"),
                _time(item["at"], "signed head time"),
                _hex64(item["key_id"], "signed head key_id"),
                _hex64(item["prev_digest"], "signed head prev_digest"),
                signature_bytes,
            )
        )
    keys: list[BundleKey] = []
    for item in raw_keys:
        if not isinstance(item, dict) or set(item) != {"key_id", "public_key", "introduced_seq"}:
            raise BundleRefused("the bundle's heads.json holds a malformed audit key")
        raw = item["public_key"]
        try:
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw) if isinstance(raw, str) else b"")
        except ValueError:
            raise BundleRefused("the bundle's heads.json holds an audit key that is not Ed25519") from None
        key_id = _hex64(item["key_id"], "audit key id")
        if key_id_of(public) != key_id:
            raise BundleRefused(f"the bundle's audit key {key_id[:16]} does not match its fingerprint")
        keys.append(BundleKey(key_id, public, _count(item["introduced_seq"], "audit key introduced_seq")))
    introduced = [k.introduced_seq for k in keys]
    if introduced != sorted(set(introduced)) or introduced[0] != 0:
        raise BundleRefused("the bundle's audit keys are not in the order they were introduced, from the start")
    return tuple(checkpoints), tuple(keys)


# ---- verifying a bundle --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What a verified bundle teaches: keys the terminal handed over to inside it, and what it found itself."""

    learned: tuple[BundleKey, ...]
    alerts: tuple[str, ...]


def _period(keys: Sequence[BundleKey], key_id: str) -> tuple[int, int | None] | None:
    for i, key in enumerate(keys):
        if key.key_id == key_id:
            return key.introduced_seq, (keys[i + 1].introduced_seq if i + 1 < len(keys) else None)
    return None


def verify_bundle(bundle: Bundle, trusted: Mapping[str, Ed25519PublicKey], terminal: str) -> Verified:
    """Check every event's hash and link, every signed head, and that the signer is trusted; raise on the first problem.

    ``bundle`` comes from ``read_bundle``, which checked the envelope's signature with the signer's key.

    ``trusted``: the terminal's audit keys the caller holds (the key registered for it and keys it
    handed over to in bundles already accepted). A key introduced inside this bundle is trusted
    only when its ``audit.key_rotated`` event is covered by a head signed with a trusted key.
    The head at the end of the range must be signed by a trusted key: through the hash chain it
    vouches for every event before it.
    """
    p = bundle.predicate
    listed = {k.key_id: k for k in bundle.keys}
    signer = bundle.signer
    events = bundle.events
    if events[0].prev_hash != p.prev_hash or events[-1].hash != p.head_hash:
        raise BundleRefused("the bundle's events do not match the range its Statement names")
    if p.first_seq == 1 and events[0].prev_hash != GENESIS_HASH:
        raise BundleRefused("the bundle starts at seq 1 but not from the genesis hash (the log was rewritten)")
    for before, event in zip((None, *events[:-1]), events, strict=True):
        if event.recomputed() != event.hash:
            raise BundleRefused(f"seq {event.seq}: hash mismatch (the event was edited after it was written)")
        if before is not None and event.prev_hash != before.hash:
            raise BundleRefused(f"seq {event.seq}: chain broken, it does not follow seq {before.seq}")
    if p.first_seq == 1:
        first = events[0]
        created = _json(first.subjects, "first event").get("workspace")
        if first.action != "workspace.create" or created != p.workspace_id:
            raise BundleRefused("the bundle's seq 1 is not the creation of the workspace its Statement names")

    by_seq = {e.seq: e for e in events}
    heads = sorted(bundle.checkpoints, key=lambda cp: cp.number)
    expected_first = p.first_seq - 1 if p.first_seq > 1 else None
    if expected_first is not None and heads[0].seq != expected_first:
        raise BundleRefused(f"the bundle lacks the signed head before its range (at seq {expected_first})")
    if expected_first is not None and heads[0].event_hash != p.prev_hash:
        raise BundleRefused("the signed head before the range does not name the event the range follows")
    if expected_first is None and (heads[0].number != 1 or heads[0].prev_digest != GENESIS_HASH):
        raise BundleRefused("the bundle starts the log but its signed heads do not start from the first")
    if heads[-1].seq != p.last_seq or heads[-1].event_hash != p.head_hash:
        raise BundleRefused(f"the bundle lacks the signed head at the end of its range (seq {p.last_seq})")
    trust = dict(trusted)
    learned: list[BundleKey] = []
    previous: Checkpoint | None = None
    for cp in heads:
        if previous is not None:
            if cp.number != previous.number + 1 or cp.prev_digest != previous.digest:
                raise BundleRefused(f"signed head {cp.number}: does not follow signed head {previous.number}")
            if cp.seq <= previous.seq:
                raise BundleRefused(f"signed head {cp.number}: covers seq {cp.seq}, not after seq {previous.seq}")
        key = listed.get(cp.key_id)
        period = _period(bundle.keys, cp.key_id)
        if key is None or period is None or not cp.signature_valid(key.public_key):
            raise BundleRefused(
                f"signed head {cp.number} (seq {cp.seq}): its signature does not verify with the log's audit keys "
                "(forged signed head)"
            )
        if not (period[0] < cp.seq and (period[1] is None or cp.seq <= period[1])):
            raise BundleRefused(f"signed head {cp.number}: signed with key {cp.key_id[:16]} outside its period")
        if previous is not None or expected_first is None:
            covered = by_seq.get(cp.seq)
            if covered is None or covered.hash != cp.event_hash:
                raise BundleRefused(f"seq {cp.seq}: differs from signed head {cp.number} (the log was rewritten)")
        # A key handed over to at this head's seq becomes trusted if a trusted key signed the hand-over.
        for new in bundle.keys:
            if new.introduced_seq == cp.seq and cp.key_id in trust and new.key_id not in trust:
                handover = by_seq.get(cp.seq)
                named = None if handover is None else _json(handover.details, "rotation").get("new_key_id")
                if handover is not None and handover.action == "audit.key_rotated" and named == new.key_id:
                    trust[new.key_id] = new.public_key
                    learned.append(new)
        previous = cp
    if heads[-1].key_id not in trust:
        raise BundleRefused(
            f"the last signed head (seq {p.last_seq}) is signed with key {heads[-1].key_id[:16]}, which is not "
            f"terminal {terminal}'s registered key nor one it handed over to by a signed rotation"
        )
    if signer not in trust:
        raise BundleRefused(
            f"the bundle is not signed by terminal {terminal}'s audit key (it is signed by key {signer[:16]}, which "
            "the terminal never handed over to)"
        )
    alerts = tuple(
        f"seq {e.seq}: the terminal found its log altered behind its back ({_json(e.details, 'alert').get('found')})"
        for e in events
        if e.action == "audit.unsigned_events"
    )
    return Verified(tuple(learned), alerts)
