"""Fuzzing the bundle reader: hostile bundles made from a genuine one, and the one rule they must obey.

The rule: whatever the bytes, reading a bundle (``unseal``, ``read_bundle``, ``verify_bundle``,
the figures' checks: ``engine.oversight.imports.check_plaintext``) either accepts it or raises
``BundleRefused`` with a one-line message. Any other exception, a hang or a crash is a bug.

Three depths of attack, so the fuzzing reaches past the outer layers:

- ``raw``: the file's bytes mutated (stops at the header or the AES-GCM tag);
- ``sealed``: the decrypted container mutated as JSON and sealed again to the oversight key
  (anyone can do this: stops at the DSSE signature or a file's digest);
- ``signed``: a file's contents mutated and the bundle signed again with the terminal's own key
  (what a terminal with a bug, or an insider holding its audit key, could send: reaches the
  event, signed-head and figures parsers and the chain checks).

``tests/oversight/test_fuzz.py`` runs a few hundred examples; ``scripts/fuzz_bundles.py`` many more.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import strategies as st

from engine.audit import AuditSigningKey
from engine.audit._encoding import canonical_json
from engine.audit.bundle import BundleRefused, container, dsse_pae, load_oversight_public_key, seal, statement, unseal
from engine.oversight.imports import check_plaintext
from tests.oversight.history import TERMINAL, World

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


@dataclass(frozen=True)
class Target:
    """A genuine bundle and the keys to read it, and to attack it the ways anyone (or its terminal) could."""

    genuine: bytes
    plaintext: bytes
    private: X25519PrivateKey
    public: X25519PublicKey
    terminal_key: AuditSigningKey
    trusted: dict[str, Ed25519PublicKey]

    @classmethod
    def of(cls, world: World, name: str = "q3") -> Target:
        private = world.private_key()
        data = world.bundles[name].read_bytes()
        terminal_key = AuditSigningKey.read_file(world.terminal_dir.with_name(world.terminal_dir.name + ".audit-key"))
        return cls(
            data,
            unseal(data, private),
            private,
            load_oversight_public_key(world.oversight_public.read_bytes()),
            terminal_key,
            {terminal_key.key_id: terminal_key.public_key},
        )

    def read(self, data: bytes) -> str:
        """'accepted' or the refusal's message; anything but ``BundleRefused`` escapes (the test's failure)."""
        try:
            check_plaintext(unseal(data, self.private), lambda t: self.trusted if t == TERMINAL else None)
        except BundleRefused as exc:
            message = exc.diagnostics()
            assert message and "\n" not in message
            return message
        return "accepted"

    def sealed(self, body: Any) -> bytes:
        return seal(canonical_json(body).encode("ascii") if not isinstance(body, bytes) else body, self.public)

    def container(self) -> dict[str, Any]:
        return dict(json.loads(self.plaintext))

    def files(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        body = self.container()
        files = {k: base64.b64decode(v) for k, v in body["files"].items()}
        predicate = json.loads(base64.b64decode(body["envelope"]["payload"]))["predicate"]
        return files, predicate

    def signed(self, files: dict[str, bytes], predicate: Any) -> bytes:
        """The files and predicate under a new Statement, signed with the terminal's own key, sealed."""
        payload = statement(files, predicate) if isinstance(predicate, dict) else _raw_statement(files, predicate)
        signature = self.terminal_key.sign(dsse_pae("application/vnd.in-toto+json", payload))
        return seal(container(payload, self.terminal_key.key_id, signature, files), self.public)


def _raw_statement(files: dict[str, bytes], predicate: Any) -> bytes:
    import hashlib

    subjects = [{"name": n, "digest": {"sha256": hashlib.sha256(files[n]).hexdigest()}} for n in sorted(files)]
    body = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://rfr.invalid/audit-bundle/v1",
        "predicate": predicate,
    }
    return json.dumps(body).encode()


# ---- mutations -------------------------------------------------------------------------------------


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """A few flips, cuts, insertions or a truncation of ``data``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "set"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "truncate":
            del out[at:]
        elif out:
            out[at] = draw(st.integers(0, 255))
    return bytes(out)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:6]):
            found += _paths(item, (*prefix, i))
    return found


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = root
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return root


@st.composite
def mutated_json(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with one part replaced by arbitrary JSON, removed, or an extra key added."""
    value = json.loads(json.dumps(value))
    path = draw(st.sampled_from(_paths(value)))
    kind = draw(st.sampled_from(["replace", "remove", "add"]))
    if kind == "remove" and path:
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        del parent[path[-1]]
        return value
    if kind == "add":
        node = value
        for step in path:
            node = node[step]
        if isinstance(node, dict):
            node[draw(st.text(max_size=10))] = draw(JSON)
            return value
    return _set(value, path, draw(JSON))


@st.composite
def sealed_attacks(draw: st.DrawFn, target: Target) -> bytes:
    """The container mutated as JSON (or as bytes), sealed again to the oversight key."""
    if draw(st.booleans()):
        return target.sealed(draw(mutated_json(target.container())))
    return target.sealed(draw(mutated_bytes(target.plaintext)))


def _json_lines(data: bytes) -> list[Any]:
    return [json.loads(line) for line in data.splitlines()]


@st.composite
def signed_attacks(draw: st.DrawFn, target: Target) -> bytes:
    """A file or the predicate mutated, and the bundle signed again with the terminal's own key."""
    files, predicate = target.files()
    part = draw(st.sampled_from(["events.jsonl", "heads.json", "figures.json", "predicate", "bytes"]))
    if part == "predicate":
        predicate = draw(mutated_json(predicate))
    elif part == "events.jsonl":
        lines = _json_lines(files[part])
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = draw(mutated_json(lines[i]))
        if draw(st.booleans()):
            lines = lines[: draw(st.integers(0, len(lines)))]
        files[part] = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    elif part == "bytes":
        name = draw(st.sampled_from(sorted(files)))
        files[name] = draw(mutated_bytes(files[name]))
    else:
        files[part] = json.dumps(draw(mutated_json(json.loads(files[part])))).encode()
    return target.signed(files, predicate)
