"""Hostile media for fuzzing (hypothesis strategies), shared by tests/media/test_fuzz.py and scripts/fuzz_media.py.

Three ways of spoiling a good medium: any file's bytes mutated (flips, cuts, junk, repeats);
a metadata file's JSON mutated and signed again with that role's own key (what a stolen role
key allows: well-signed nonsense), with the chain above it re-signed so TUF gets as far as the
content; and a package manifest's JSON mutated, parsed on its own. Every outcome must be a
clean refusal (an ``RfrError``: ``MediaRefused`` or ``PackageRejected``) or a medium that reads
and stages; anything else (a traceback) fails.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from tuf.api.metadata import Metadata

from engine.errors import RfrError
from engine.media.apply import stage
from tests.media.conftest import World, build_world
from tests.media.repository import (
    _SERIALIZER,
    accounts_package,
    first_password,
    library_package,
    policy_package,
    resign_chain,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@dataclass
class Target:
    """A terminal, and a good medium for it (a policy, an accounts and a library package)."""

    world: World
    genuine: Path

    @classmethod
    def build(cls, folder: Path) -> Target:
        from engine.media.format import UserEntry

        w = build_world(folder)
        w.repo.add_package(*policy_package(1, "2027.1"))
        users = [UserEntry("dave", "Dave D", ("rfr_user",), "Constable", first_password("first pass 1"), False)]
        w.repo.add_package(*accounts_package(1, users))
        w.repo.add_package(*library_package(2, {"charlie": 2}, remove=["alpha"]))
        return cls(w, w.medium())

    def files(self) -> list[str]:
        root = self.genuine / "rfr-packages"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def attempt(self, medium: Path) -> str:
        """Read and stage ``medium``; the verdict ("staged" or the refusal's first words). Other errors propagate."""
        try:
            reading = self.world.read(medium)
            if reading.to_apply:
                stage(self.world.ws, reading).remove(keep_models=False)
            return "staged"
        except RfrError as exc:
            return " ".join(exc.diagnostics().split()[:4])

    def copy(self, scratch: Path) -> Path:
        if scratch.exists():
            shutil.rmtree(scratch)
        shutil.copytree(self.genuine, scratch)
        return scratch


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "replace"]))
    at = draw(st.integers(0, max(0, len(data) - 1)))
    if kind == "flip" and data:
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if kind == "cut":
        return data[:at]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if kind == "repeat":
        return data[:at] + data[at:] * draw(st.integers(2, 40))
    return draw(st.binary(max_size=256))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@st.composite
def json_mutation(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with one value replaced, one key deleted, or one key added, somewhere inside."""
    doc = json.loads(json.dumps(document))
    path = draw(st.sampled_from(_paths(doc)[1:] or [()]))
    if not path:
        return draw(JSON)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    kind = draw(st.sampled_from(["replace", "delete", "add"]))
    if kind == "delete" and isinstance(parent, dict):
        del parent[last]
    elif kind == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(JSON)
    else:
        parent[last] = draw(JSON)
    return doc


def signed_mutation(target: Target, medium: Path, relative: str, mutate: Callable[[dict[str, Any]], Any]) -> None:
    """Mutate the signed part of one metadata file on ``medium``, signed again by the role's key, chain above fixed."""
    repo = target.world.repo
    path = medium / "rfr-packages" / relative
    envelope = json.loads(path.read_bytes())
    signed = mutate(envelope["signed"])
    role = relative.split("/")[-1].split(".")[-2]
    try:
        md: Metadata[Any] = Metadata.from_dict({"signed": signed, "signatures": []})
        for signer in repo.signers.get(role) or [repo.pool[1]]:
            md.sign(signer, append=True)
        path.write_bytes(md.to_bytes(_SERIALIZER))
    except Exception:  # not metadata (or not signable) any more: written as it is, with the old signatures
        path.write_text(json.dumps({"signed": signed, "signatures": envelope["signatures"]}))
        return
    if role in ("targets", "library", "accounts", "models"):
        resign_chain(repo, medium)  # the snapshot and timestamp signed again above it
    elif role == "snapshot":
        resign_chain(repo, medium, snapshot=lambda _s: None)
