"""A central unit's TUF repository for tests, built in memory and published as a medium (our own, not the central side).

``CentralRepository`` keeps every role's metadata as ``tuf.api.metadata`` objects signed with
securesystemslib ``CryptoSigner`` keys made for the test: root (keys numbered, so key rotations
can be written as tables), timestamp, snapshot, top-level targets (it only delegates) and the
delegated roles ``library``, ``accounts`` and ``models`` with the paths the design gives them.
``publish(folder)`` bumps every version, signs and writes the medium's layout: every root
version, ``timestamp.json``, consistent ``<v>.snapshot.json`` / ``<v>.targets.json`` /
``<v>.<role>.json``, and the targets named ``<sha256>.<name>``. Tests then tamper with what
was written, or with the objects before publishing (``sign_with``, ``expires``, ``issued``).

Packages are ``engine.media.format.Manifest`` objects with their blobs; ``library_package``
and friends make them from the stand-in face engine's templates of synthetic JPEGs. Every target
is sealed with the force's media key as the central unit seals it (``MEDIA_KEY``, which the test
terminals hold), and blobs are named by its keyed hash (``blob_name``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from engine.media.format import (
    AccountsDelta,
    FirstPassword,
    ImageEntry,
    LibraryDelta,
    Manifest,
    ModelsUpdate,
    PolicyUpdate,
    SubjectEntry,
    UserEntry,
    blob_path,
)
from engine.media.sealing import MediaKey
from engine.policy import default_policy_path
from engine.security.users import ScryptParams, hash_password
from tests.synthetic import SyntheticFaceEngine, load_rgb_with_opencv, synthetic_jpeg

FORCE = "force-a"
GROUP = "custody-suites"
DELEGATED = {
    "library": ["packages/library/*/*", "blobs/*"],
    "accounts": ["packages/accounts/*", "packages/policy/*", "blobs/*"],
    "models": ["packages/models/*", "blobs/*"],
}
ROLE_OF_KIND = {"library": "library", "accounts": "accounts", "policy": "accounts", "models": "models"}
_SERIALIZER = JSONSerializer(compact=False)
MEDIA_KEY = MediaKey.generate()


def blob_name(data: bytes) -> str:
    """A blob's target path: named by the media key's keyed hash of its content, as the central unit names it."""
    return blob_path(MEDIA_KEY.name_of(data))


def _signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


@dataclass
class CentralRepository:
    """The central unit's repository at one moment; ``publish`` writes it as a medium."""

    now: datetime
    root_keys: int = 1
    root_threshold: int = 1
    snapshot_keys: int = 1
    snapshot_threshold: int = 1
    pool: dict[int, CryptoSigner] = field(default_factory=dict)  # root keys by number
    signers: dict[str, list[CryptoSigner]] = field(default_factory=dict)
    sign_with: dict[str, list[Signer]] = field(default_factory=dict)  # overrides: who signs a role's next version
    expires: dict[str, timedelta] = field(default_factory=dict)
    issued: datetime | None = None  # x-rfr-issued of the next timestamp (default: now)
    root_history: list[bytes] = field(default_factory=list)
    blobs: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # target path -> (role, bytes)

    def __post_init__(self) -> None:
        for number in range(1, self.root_keys + 1):
            self.pool[number] = _signer()
        self.signers = {
            "timestamp": [_signer()],
            "snapshot": [_signer() for _ in range(self.snapshot_keys)],
            "targets": [_signer()],
            **{role: [_signer()] for role in DELEGATED},
        }
        root = Root(expires=self.now + timedelta(days=365), consistent_snapshot=True)
        for number in range(1, self.root_keys + 1):
            root.add_key(self.pool[number].public_key, Root.type)
        root.roles[Root.type].threshold = self.root_threshold
        for role in ("timestamp", "snapshot", "targets"):
            for signer in self.signers[role]:
                root.add_key(signer.public_key, role)
        root.roles["snapshot"].threshold = self.snapshot_threshold
        self.root = Metadata(root)
        self.root_signers: list[Signer] = [self.pool[n] for n in range(1, self.root_keys + 1)]
        self._sign_root(self.root_signers)
        self.targets = Metadata(Targets(expires=self.now + timedelta(days=90)))
        self.targets.signed.delegations = Delegations(keys={}, roles={})
        for role, paths in DELEGATED.items():
            key = self.signers[role][0].public_key
            self.targets.signed.delegations.keys[key.keyid] = key
            roles = self.targets.signed.delegations.roles
            assert roles is not None
            roles[role] = DelegatedRole(role, [key.keyid], 1, False, paths)
        self.delegated = {role: Metadata(Targets(expires=self.now + timedelta(days=90))) for role in DELEGATED}
        self.snapshot = Metadata(Snapshot(expires=self.now + timedelta(days=30)))
        self.timestamp = Metadata(Timestamp(expires=self.now + timedelta(days=7)))

    # ---- roots -----------------------------------------------------------------------------------

    def _sign_root(self, signers: Iterable[Signer]) -> bytes:
        self.root.signatures.clear()
        for signer in signers:
            self.root.sign(signer, append=True)
        data = self.root.to_bytes(_SERIALIZER)
        self.root_history.append(data)
        return data

    @property
    def root_bytes(self) -> bytes:
        """The first root: what an engineer installs with ``rfr media trust``."""
        return self.root_history[0]

    def rotate_root(
        self,
        keys: Sequence[int],
        threshold: int,
        sigs: Sequence[int],
        *,
        replace_role: dict[str, CryptoSigner] | None = None,
        extra_signers: Sequence[Signer] = (),
    ) -> bytes:
        """The next root version: root keys ``keys`` (numbered; new numbers are new keys), signed by ``sigs``.

        ``replace_role`` swaps a top-level role's key (the old one is revoked).
        """
        root = self.root.signed
        for keyid in list(root.roles[Root.type].keyids):
            root.revoke_key(keyid, Root.type)
        for number in keys:
            if number not in self.pool:
                self.pool[number] = _signer()
            root.add_key(self.pool[number].public_key, Root.type)
        root.roles[Root.type].threshold = threshold
        for role, signer in (replace_role or {}).items():
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
            root.add_key(signer.public_key, role)
            self.signers[role] = [signer]
        root.version += 1
        for number in sigs:
            if number not in self.pool:
                self.pool[number] = _signer()
        return self._sign_root([*(self.pool[n] for n in sigs), *extra_signers])

    # ---- packages ------------------------------------------------------------------------------

    def add_package(self, manifest: Manifest, blobs: dict[str, bytes], role: str | None = None) -> None:
        chosen = role or ROLE_OF_KIND[manifest.kind]
        self.add_target(chosen, manifest.path, manifest.to_bytes())
        for path, data in blobs.items():
            self.add_target(chosen, path, data)

    def add_target(self, role: str, path: str, data: bytes, *, sealed: bool = True) -> None:
        """Sign ``data`` as the target ``path``, sealed with the media key (``sealed=False``: as it is)."""
        if sealed:
            data = MEDIA_KEY.seal(path, data)
        targets = self.targets if role == "targets" else self.delegated[role]
        targets.signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
        self.blobs[path] = (role, data)

    def remove_target(self, path: str) -> None:
        role, _ = self.blobs.pop(path)
        targets = self.targets if role == "targets" else self.delegated[role]
        del targets.signed.targets[path]

    # ---- publishing ----------------------------------------------------------------------------

    def _sign(self, role: str, md: Metadata[Any]) -> bytes:
        md.signatures.clear()
        for signer in self.sign_with.pop(role, None) or self.signers[role]:
            md.sign(signer, append=True)
        return md.to_bytes(_SERIALIZER)

    def _expiry(self, role: str, default: timedelta) -> datetime:
        return self.now + self.expires.get(role, default)

    def publish(self, medium: Path) -> Path:
        """Bump every version, sign, and write the medium into ``medium/rfr-packages`` (replacing what was there)."""
        out = medium / "rfr-packages"
        if out.exists():
            shutil.rmtree(out)
        (out / "metadata").mkdir(parents=True)
        for version, data in enumerate(self.root_history, start=1):
            (out / "metadata" / f"{version}.root.json").write_bytes(data)
        snapshot = self.snapshot.signed
        for role, md in self.delegated.items():
            md.signed.version += 1
            md.signed.expires = self._expiry(role, timedelta(days=90))
            data = self._sign(role, md)
            (out / "metadata" / f"{md.signed.version}.{role}.json").write_bytes(data)
            snapshot.meta[f"{role}.json"] = MetaFile(md.signed.version)
        self.targets.signed.version += 1
        self.targets.signed.expires = self._expiry("targets", timedelta(days=90))
        data = self._sign("targets", self.targets)
        (out / "metadata" / f"{self.targets.signed.version}.targets.json").write_bytes(data)
        snapshot.meta["targets.json"] = MetaFile(self.targets.signed.version)
        snapshot.version += 1
        snapshot.expires = self._expiry("snapshot", timedelta(days=30))
        data = self._sign("snapshot", self.snapshot)
        (out / "metadata" / f"{snapshot.version}.snapshot.json").write_bytes(data)
        timestamp = self.timestamp.signed
        timestamp.version += 1
        timestamp.expires = self._expiry("timestamp", timedelta(days=7))
        timestamp.snapshot_meta = MetaFile(snapshot.version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})
        issued = self.issued or self.now
        timestamp.unrecognized_fields["x-rfr-issued"] = issued.strftime("%Y-%m-%dT%H:%M:%SZ")
        (out / "metadata" / "timestamp.json").write_bytes(self._sign("timestamp", self.timestamp))
        for path, (_role, blob) in self.blobs.items():
            folder, _, name = path.rpartition("/")
            where = out / "targets" / folder
            where.mkdir(parents=True, exist_ok=True)
            (where / f"{hashlib.sha256(blob).hexdigest()}.{name}").write_bytes(blob)
        return medium

    def target_file(self, medium: Path, path: str) -> Path:
        """Where ``path`` was written in ``medium``."""
        _role, blob = self.blobs[path]
        folder, _, name = path.rpartition("/")
        return medium / "rfr-packages" / "targets" / folder / f"{hashlib.sha256(blob).hexdigest()}.{name}"


def resign_chain(
    repo: CentralRepository,
    medium: Path,
    *,
    targets: Any = None,
    snapshot: Any = None,
    timestamp: Any = None,
) -> None:
    """Rewrite a published medium's chain as the holders of those keys could: mutate the top-level targets
    (re-signed with the targets key), then the snapshot (re-signed, naming it), then the timestamp naming that."""
    folder = medium / "rfr-packages" / "metadata"
    ts: Metadata[Timestamp] = Metadata.from_bytes((folder / "timestamp.json").read_bytes())
    snap_path = folder / f"{ts.signed.snapshot_meta.version}.snapshot.json"
    snap: Metadata[Snapshot] = Metadata.from_bytes(snap_path.read_bytes())
    if targets is not None:
        path = folder / f"{snap.signed.meta['targets.json'].version}.targets.json"
        md: Metadata[Targets] = Metadata.from_bytes(path.read_bytes())
        targets(md.signed)
        md.signatures.clear()
        for signer in repo.signers["targets"]:
            md.sign(signer, append=True)
        path.write_bytes(md.to_bytes(_SERIALIZER))
    if snapshot is not None:
        snapshot(snap.signed)
    snap.signatures.clear()
    for signer in repo.signers["snapshot"]:
        snap.sign(signer, append=True)
    data = snap.to_bytes(_SERIALIZER)
    snap_path.write_bytes(data)
    ts.signed.snapshot_meta = MetaFile(snap.signed.version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})
    if timestamp is not None:
        timestamp(ts.signed)
    ts.signatures.clear()
    for signer in repo.signers["timestamp"]:
        ts.sign(signer, append=True)
    (folder / "timestamp.json").write_bytes(ts.to_bytes(_SERIALIZER))


def resign(path: Path, signer: Signer, mutate: Any = None) -> None:
    """Re-sign the metadata file at ``path`` with ``signer`` (after ``mutate(signed)``), as a key holder could."""
    md: Metadata[Any] = Metadata.from_bytes(path.read_bytes())
    if mutate is not None:
        mutate(md.signed)
    md.signatures.clear()
    md.sign(signer)
    path.write_bytes(md.to_bytes(_SERIALIZER))


# ---- packages --------------------------------------------------------------------------------------

ENGINE = SyntheticFaceEngine()
FAST_CENTRAL = ScryptParams(n=2**10)


def template_of(data: bytes) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    face = ENGINE.analyze(load_rgb_with_opencv(data, "synthetic"))[0]
    assert face.embedding is not None
    return np.asarray(face.embedding, dtype="<f4"), tuple(face.box.as_list())  # type: ignore[return-value]


def library_package(
    sequence: int,
    add: dict[str, int] | None = None,
    remove: Sequence[str] = (),
    *,
    name: str = "custody",
    seed: int = 0,
    force: str = FORCE,
    groups: Sequence[str] = (GROUP,),
    model_sha256: str = ENGINE.model_sha256,
    kind: str = "substantive",
    description: str = "",
) -> tuple[Manifest, dict[str, bytes]]:
    """A library delta: ``add`` {reference: images} of synthetic faces (stand-in templates), ``remove`` references."""
    blobs: dict[str, bytes] = {}
    subjects = []
    vectors = []
    for number, (reference, count) in enumerate(sorted((add or {}).items())):
        images = []
        for variant in range(count):
            data = synthetic_jpeg(seed * 1009 + sequence * 101 + number, variant)
            sha = hashlib.sha256(data).hexdigest()
            vector, box = template_of(data)
            row = len(vectors)
            images.append(ImageEntry(blob_name(data), sha, "image/jpeg", "2024-03-01", "25-34", "suite B", row, box))
            vectors.append(vector)
            blobs[blob_name(data)] = data
        subjects.append(SubjectEntry(reference, "male", "IC1", None, tuple(images)))
    templates = None
    if vectors:
        array = np.stack(vectors).astype("<f4").tobytes()
        templates = blob_name(array)
        blobs[templates] = array
    delta = LibraryDelta(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        authorisation=None if kind == "substantive" else "AUTH-1",
        expires_at=None if kind == "substantive" else "2027-06-30T00:00:00+00:00",
        description="custody images",
        model_id=ENGINE.model_id,
        model_sha256=model_sha256,
        templates=templates,
        add=tuple(subjects),
        remove=tuple(remove),
    )
    manifest = Manifest(
        kind="library",
        stream=f"library:{name}",
        sequence=sequence,
        force=force,
        groups=tuple(groups),
        created_at="2026-12-01T09:00:00Z",
        description=description or f"library {name} delta {sequence}",
        library=delta,
    )
    return manifest, blobs


def first_password(password: str) -> FirstPassword:
    hashed = hash_password(password, FAST_CENTRAL)
    return FirstPassword(hashed.n, hashed.r, hashed.p, hashed.salt, hashed.digest)


def accounts_package(
    sequence: int,
    users: Sequence[UserEntry],
    remove: Sequence[str] = (),
    *,
    force: str = FORCE,
    groups: Sequence[str] = (GROUP,),
) -> tuple[Manifest, dict[str, bytes]]:
    manifest = Manifest(
        kind="accounts",
        stream="accounts",
        sequence=sequence,
        force=force,
        groups=tuple(groups),
        created_at="2026-12-01T09:00:00Z",
        description=f"accounts {sequence}",
        accounts=AccountsDelta(tuple(users), tuple(remove)),
    )
    return manifest, {}


def policy_text(version: str) -> bytes:
    text = default_policy_path().read_text(encoding="utf-8")
    lines = [f'version: "{version}"' if line.startswith("version:") else line for line in text.splitlines()]
    return ("\n".join(lines) + "\n").encode("utf-8")


def policy_package(sequence: int, version: str, *, data: bytes | None = None) -> tuple[Manifest, dict[str, bytes]]:
    body = data if data is not None else policy_text(version)
    blob = blob_name(body)
    manifest = Manifest(
        kind="policy",
        stream="policy",
        sequence=sequence,
        force=FORCE,
        groups=("*",),
        created_at="2026-12-01T09:00:00Z",
        description=f"policy {version}",
        policy=PolicyUpdate(version, blob),
    )
    return manifest, {blob: body}


def models_package(
    sequence: int, files: dict[str, bytes], model_id: str = "face-model-2"
) -> tuple[Manifest, dict[str, bytes]]:
    blobs = {blob_name(data): data for data in files.values()}
    pairs = tuple(sorted((file, blob_name(data)) for file, data in files.items()))
    manifest = Manifest(
        kind="models",
        stream="models",
        sequence=sequence,
        force=FORCE,
        groups=("*",),
        created_at="2026-12-01T09:00:00Z",
        description="face model update",
        models=ModelsUpdate(model_id, pairs),
    )
    return manifest, blobs


def model_files() -> dict[str, bytes]:
    """A models folder: the terminal's own built files with a manifest pinning them (as the central unit ships)."""
    from engine.faces.models import models_dir

    folder = models_dir()
    manifest = folder / "manifest.yaml"
    names = ["manifest.yaml"]
    import yaml

    pins = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    names += sorted(pins["outputs"]) + sorted(pins.get("pinned", {}))
    return {name: (folder / name).read_bytes() for name in names}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")
