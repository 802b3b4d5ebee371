"""What central enrolment leaves in its output folder, sealed, and how ``central package build`` reads it back.

Layout of ``DIR`` (``rfr central enrol --out DIR``)::

    enrolment.json          the enrolment's identity: manifest hash and row count, face model, batch size,
                            the sealing header (salt, cost, key check). Nothing personal or biometric.
    manifest.sealed         the manifest as enrolled (its text and the folder its image paths are relative to)
    checkpoint.sealed       the finished batches (row ranges), rewritten atomically as batches finish
    parts/NNNNNNNN.sealed   one per finished batch: each row's outcome (template, image hash, face box,
                            or why it was skipped)

A batch is finished when its part file is in place (written atomically); the checkpoint lists
finished batches so a restart need not open every part, and a part finished after the last
checkpoint write is found, authenticated and counted all the same. What is finished is never
computed again. Everything but ``enrolment.json`` is sealed (``engine.central.sealed``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.central import CentralError
from engine.central.sealed import DEFAULT_KDF, Kdf, SealingKey, remove_temporaries, write_atomic
from engine.errors import MetadataError
from engine.faces.types import FACE_CHOSEN_BY
from engine.files import read_regular_file, write_new_file
from engine.library.index import NDIM
from engine.library.metadata import Metadata

FORMAT = 1
HEADER = "enrolment.json"
MANIFEST = "manifest.sealed"
CHECKPOINT = "checkpoint.sealed"
PARTS = "parts"
MAX_MANIFEST_BYTES = 4 << 30
_PART = re.compile(r"^(\d{8})\.sealed$")


@dataclass(frozen=True)
class ManifestRow:
    """One image of the manifest: its row number (0-based, manifest order), subject, path and the face named."""

    row: int
    reference: str
    image: str  # as written in the manifest
    path: Path  # resolved against the manifest's folder
    face_point: tuple[int, int] | None = None  # face_x, face_y: a point on the face a person named


@dataclass(frozen=True)
class EnrolmentManifest:
    """A validated manifest: the terminal's enrolment metadata rules (``engine.library.metadata``), with paths."""

    name: str
    base: Path
    text: str
    sha256: str
    metadata: Metadata
    rows: tuple[ManifestRow, ...]

    @classmethod
    def parse(cls, name: str, base: Path, text: str) -> EnrolmentManifest:
        from engine.library.metadata import parse_csv, parse_yaml

        try:
            meta = parse_yaml(text, name) if name.lower().endswith((".yaml", ".yml")) else parse_csv(text, name)
        except MetadataError as exc:
            raise CentralError(f"enrolment manifest {exc.diagnostics()}") from None
        rows = tuple(
            ManifestRow(
                i,
                reference,
                image,
                Path(image) if Path(image).is_absolute() else base / image,
                meta.image(reference, image).face_point,
            )
            for i, (reference, image) in enumerate(meta.images)
        )
        if not rows:
            raise CentralError(f"enrolment manifest {name}: no image rows (each image needs a row with its path)")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(name, base, text, digest, meta, rows)

    @classmethod
    def load(cls, path: Path) -> EnrolmentManifest:
        path = Path(path)
        if path.suffix.lower() not in (".csv", ".yaml", ".yml"):
            raise CentralError(f"enrolment manifest {path} must be a .csv file (or .yaml)")
        raw = read_regular_file(path, limit=MAX_MANIFEST_BYTES, what="enrolment manifest", error=CentralError)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CentralError(f"enrolment manifest {path} is not UTF-8 text") from None
        return cls.parse(path.name, path.absolute().parent, text)


@dataclass(frozen=True)
class Outcome:
    """One row's result: enrolled (a template, where the face is and how it was chosen) or skipped (a stable
    reason and a sentence).

    ``chosen_by`` is ``engine.faces.types.FACE_CHOSEN_BY``'s "only", "dominant" or "person". Parts written
    before it existed carry only ``chose_dominant`` and read as "dominant" or "only"; it is still written, so
    a part stays readable by those versions.
    """

    row: int
    status: str  # "enrolled" | "skipped"
    sha256: str | None
    media_type: str | None = None
    width: int = 0
    height: int = 0
    box: tuple[int, int, int, int] | None = None
    template: bytes | None = None  # little-endian float32 x NDIM
    chosen_by: str | None = None  # enrolled: how the face was chosen
    reason: str | None = None
    detail: str | None = None

    @property
    def chose_dominant(self) -> bool:
        return self.chosen_by == "dominant"

    @property
    def vector(self) -> NDArray[np.float32]:
        assert self.template is not None
        return np.frombuffer(self.template, dtype="<f4")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "status": self.status, "sha256": self.sha256}
        if self.status == "enrolled":
            assert self.template is not None and self.box is not None
            out |= {
                "media_type": self.media_type,
                "width": self.width,
                "height": self.height,
                "box": list(self.box),
                "template": base64.b64encode(self.template).decode("ascii"),
                "chosen_by": self.chosen_by or "only",
                "chose_dominant": self.chose_dominant,
            }
        else:
            out |= {"reason": self.reason, "detail": self.detail}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        if data["status"] == "enrolled":
            template = base64.b64decode(data["template"])
            if len(template) != 4 * NDIM:
                raise ValueError("template length")
            box = data["box"]
            chosen_by = data.get("chosen_by") or ("dominant" if data["chose_dominant"] else "only")
            if chosen_by not in FACE_CHOSEN_BY:
                raise ValueError("chosen_by")
            return cls(
                int(data["row"]),
                "enrolled",
                str(data["sha256"]),
                str(data["media_type"]),
                int(data["width"]),
                int(data["height"]),
                (int(box[0]), int(box[1]), int(box[2]), int(box[3])),
                template,
                str(chosen_by),
            )
        return cls(
            int(data["row"]),
            "skipped",
            data.get("sha256"),
            reason=str(data["reason"]),
            detail=str(data["detail"]),
        )


@dataclass(frozen=True)
class EnrolmentHeader:
    id: str
    manifest_name: str
    manifest_sha256: str
    rows: int
    model_id: str
    model_sha256: str
    batch_size: int
    upsample: int
    created_at: str
    sealing: dict[str, Any]

    @property
    def batches(self) -> int:
        return -(-self.rows // self.batch_size)

    def batch_rows(self, batch: int) -> range:
        return range(batch * self.batch_size, min((batch + 1) * self.batch_size, self.rows))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "manifest": {"name": self.manifest_name, "sha256": self.manifest_sha256, "rows": self.rows},
            "model": {"model_id": self.model_id, "sha256": self.model_sha256},
            "batch_size": self.batch_size,
            "upsample": self.upsample,
            "created_at": self.created_at,
            "sealing": self.sealing,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> EnrolmentHeader:
        try:
            if data["format"] != FORMAT:
                raise CentralError(f"{where}: format {data['format']!r} is not {FORMAT}")
            return cls(
                str(data["id"]),
                str(data["manifest"]["name"]),
                str(data["manifest"]["sha256"]),
                int(data["manifest"]["rows"]),
                str(data["model"]["model_id"]),
                str(data["model"]["sha256"]),
                int(data["batch_size"]),
                int(data["upsample"]),
                str(data["created_at"]),
                dict(data["sealing"]),
            )
        except (KeyError, TypeError, ValueError):
            raise CentralError(f"{where} is malformed: not the output of 'rfr central enrol'") from None


class EnrolmentOutput:
    """An enrolment output folder, opened with the central passphrase: its manifest, checkpoint and parts."""

    def __init__(self, directory: Path, header: EnrolmentHeader, key: SealingKey) -> None:
        self.directory = directory
        self.header = header
        self._key = key
        self.finished: set[int] = set()
        self.tally: dict[str, int] = {}  # over the finished batches: "enrolled", and each reason for skipping
        self.chosen: dict[str, int] = {}  # over the finished batches: enrolled faces by how chosen ("only", ...)

    # Creating and opening

    @classmethod
    def create(
        cls,
        directory: Path,
        manifest: EnrolmentManifest,
        passphrase: str,
        *,
        model_id: str,
        model_sha256: str,
        batch_size: int,
        upsample: int,
        kdf: Kdf = DEFAULT_KDF,
    ) -> EnrolmentOutput:
        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise CentralError(f"enrolment output {directory} exists and is not an enrolment: choose a new --out")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        (directory / PARTS).mkdir(mode=0o700, exist_ok=True)
        key, sealing = SealingKey.create(passphrase, kdf)
        header = EnrolmentHeader(
            secrets.token_hex(16),
            manifest.name,
            manifest.sha256,
            len(manifest.rows),
            model_id,
            model_sha256,
            batch_size,
            upsample,
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            sealing,
        )
        output = cls(directory, header, key)
        sealed_manifest = json.dumps({"name": manifest.name, "base": str(manifest.base), "text": manifest.text})
        write_atomic(directory / MANIFEST, key.seal("manifest", output._context(), sealed_manifest.encode()))
        write_new_file(
            directory / HEADER,
            json.dumps(header.to_json(), indent=1, sort_keys=True).encode(),
            what="enrolment header",
            error=CentralError,
        )
        return output

    @classmethod
    def open(cls, directory: Path, passphrase: str) -> EnrolmentOutput:
        """Open an existing output: wrong passphrase refused first; the checkpoint and later parts read."""
        directory = Path(directory)
        where = str(directory / HEADER)
        if not (directory / HEADER).is_file():
            raise CentralError(
                f"{directory} is not an enrolment output (no {HEADER}): give the folder of 'rfr central enrol --out'"
            )
        raw = read_regular_file(directory / HEADER, limit=1 << 20, what="enrolment header", error=CentralError)
        try:
            data = json.loads(raw)
        except ValueError:
            raise CentralError(f"{where} is not JSON: not the output of 'rfr central enrol'") from None
        header = EnrolmentHeader.from_json(data, where)
        output = cls(directory, header, SealingKey.open(passphrase, header.sealing, where))
        output._recover()
        return output

    def _context(self, *parts: object) -> bytes:
        return ":".join(["rfr-central-enrolment", self.header.id, *map(str, parts)]).encode()

    # The manifest as enrolled

    def manifest(self) -> EnrolmentManifest:
        path = self.directory / MANIFEST
        blob = read_regular_file(path, limit=MAX_MANIFEST_BYTES, what="sealed manifest", error=CentralError)
        data = json.loads(self._key.unseal("manifest", self._context(), blob, str(path)))
        manifest = EnrolmentManifest.parse(str(data["name"]), Path(data["base"]), str(data["text"]))
        if manifest.sha256 != self.header.manifest_sha256:
            raise CentralError(f"{path} does not hold the manifest this enrolment was made from")
        return manifest

    # Finished work

    def _recover(self) -> None:
        """The checkpoint, then any part finished after it was last written; a crash's temporaries removed."""
        parts = self.directory / PARTS
        remove_temporaries(self.directory)
        remove_temporaries(parts)
        path = self.directory / CHECKPOINT
        if path.exists():
            blob = read_regular_file(path, limit=1 << 30, what="checkpoint", error=CentralError)
            data = json.loads(self._key.unseal("checkpoint", self._context(), blob, str(path)))
            for start, stop in data["batches"]:
                self.finished.update(range(int(start), int(stop)))
            self.tally = {str(k): int(v) for k, v in data["tally"].items()}
            if "chosen" in data:
                self.chosen = {str(k): int(v) for k, v in data["chosen"].items()}
            else:  # a checkpoint written before faces were counted by how chosen: counted from the parts once
                for batch in sorted(self.finished):
                    self._count_chosen(self.read_part(batch))
        for entry in os.listdir(parts):
            match = _PART.fullmatch(entry)
            if match is None:
                continue
            batch = int(match.group(1))
            if batch not in self.finished and batch < self.header.batches:
                self._count(self.read_part(batch))  # authenticated before it counts as finished
                self.finished.add(batch)
        missing = sorted(b for b in self.finished if not (parts / _part_name(b)).is_file())
        if missing:
            raise CentralError(
                f"{path} lists batch {missing[0]} as finished but its part file is gone: restore it from backup, "
                "or remove the checkpoint to redo what is missing"
            )

    def write_part(self, batch: int, outcomes: list[Outcome]) -> None:
        expected = list(self.header.batch_rows(batch))
        if [o.row for o in outcomes] != expected:
            raise CentralError(f"batch {batch} came back with rows other than those sent: nothing was kept from it")
        payload = json.dumps({"batch": batch, "outcomes": [o.to_json() for o in outcomes]}).encode()
        path = self.directory / PARTS / _part_name(batch)
        write_atomic(path, self._key.seal("part", self._context("part", batch), payload))
        if batch not in self.finished:
            self.finished.add(batch)
            self._count(outcomes)

    def _count(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            name = "enrolled" if outcome.status == "enrolled" else outcome.reason or "skipped"
            self.tally[name] = self.tally.get(name, 0) + 1
        self._count_chosen(outcomes)

    def _count_chosen(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.status == "enrolled":
                how = outcome.chosen_by or "only"
                self.chosen[how] = self.chosen.get(how, 0) + 1

    def read_part(self, batch: int) -> list[Outcome]:
        path = self.directory / PARTS / _part_name(batch)
        blob = read_regular_file(path, limit=1 << 30, what="enrolment part", error=CentralError)
        data = json.loads(self._key.unseal("part", self._context("part", batch), blob, str(path)))
        try:
            outcomes = [Outcome.from_json(o) for o in data["outcomes"]]
        except (KeyError, TypeError, ValueError):
            raise CentralError(f"{path} is malformed: remove it and run 'rfr central enrol' again") from None
        if int(data["batch"]) != batch or [o.row for o in outcomes] != list(self.header.batch_rows(batch)):
            raise CentralError(f"{path} does not hold batch {batch}'s rows")
        return outcomes

    def write_checkpoint(self) -> None:
        payload = json.dumps(
            {"batches": _ranges(sorted(self.finished)), "tally": self.tally, "chosen": self.chosen}
        ).encode()
        write_atomic(self.directory / CHECKPOINT, self._key.seal("checkpoint", self._context(), payload))

    @property
    def remaining(self) -> list[int]:
        return [b for b in range(self.header.batches) if b not in self.finished]

    @property
    def complete(self) -> bool:
        return not self.remaining

    def outcomes(self) -> Iterator[Outcome]:
        """Every row's outcome in manifest order (the enrolment must be complete)."""
        if not self.complete:
            rows = sum(len(self.header.batch_rows(b)) for b in self.remaining)
            raise CentralError(
                f"enrolment {self.directory} is not finished ({rows} of {self.header.rows} images still to do): "
                "run the same 'rfr central enrol' command again to finish it"
            )
        for batch in range(self.header.batches):
            yield from self.read_part(batch)


def _part_name(batch: int) -> str:
    return f"{batch:08d}.sealed"


def _ranges(values: list[int]) -> list[list[int]]:
    """[0, 1, 2, 5, 6] -> [[0, 3], [5, 7]]: the checkpoint stays small for millions of images."""
    out: list[list[int]] = []
    for value in values:
        if out and out[-1][1] == value:
            out[-1][1] = value + 1
        else:
            out.append([value, value + 1])
    return out
