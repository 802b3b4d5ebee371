"""Generated central enrolments of any size: JPEGs of noise, random unit templates, no face engine, nothing biometric.

For what needs an enrolment output (``engine.central.outputs``) of many images without running the
face engine on them: the bounded-memory test of package building, and ``scripts/bench_media_apply.py``
(a library package of gigabytes). Each image is one of a few JPEGs of random noise made unique by a
comment segment carrying its number (so every image is its own blob, as every custody image is), and
each template a random unit vector. The output is sealed exactly as ``rfr central enrol`` seals it.
"""

from __future__ import annotations

import csv
import hashlib
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.central.outputs import EnrolmentManifest, EnrolmentOutput, Outcome
from engine.central.sealed import Kdf
from engine.library.index import NDIM

BASES = 8
_COLUMNS = ("subject", "image", "sex", "ic_code", "capture_date", "age_range", "source")


def noise_jpeg(seed: int, target_bytes: int) -> tuple[bytes, int, int]:
    """A JPEG of random noise of about ``target_bytes`` (within a few per cent), and its width and height."""
    import cv2

    rng = np.random.default_rng(seed)
    side = max(16, int((target_bytes / 1.6) ** 0.5))
    for _ in range(4):
        pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        size = int(encoded.size)
        if abs(size - target_bytes) <= target_bytes * 0.03:
            break
        side = max(16, int(side * (target_bytes / size) ** 0.5))
    return bytes(encoded.tobytes()), side, side


def numbered(jpeg: bytes, number: int) -> bytes:
    """The same picture with a comment segment (COM) naming ``number`` after its start: other bytes, same pixels."""
    comment = b"rfr-generated %012d" % number
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def generated_enrolment(
    folder: Path,
    output: Path,
    passphrase: str,
    *,
    images: int,
    bytes_each: int,
    model: tuple[str, str],
    kdf: Kdf,
    per_subject: int = 2,
    batch_size: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``images`` generated JPEGs and their manifest under ``folder``, and a finished enrolment of them in
    ``output``; the total bytes of the images."""
    (folder / "images").mkdir(parents=True)
    bases = [noise_jpeg(seed, bytes_each) for seed in range(BASES)]
    rng = np.random.default_rng(2026)
    manifest_path = folder / "manifest.csv"
    total = 0
    with manifest_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_COLUMNS)
        for number in range(images):
            data = numbered(bases[number % BASES][0], number)
            name = f"images/{number:08d}.jpg"
            (folder / name).write_bytes(data)
            total += len(data)
            sex = ("female", "male")[number // per_subject % 2]
            writer.writerow([f"GEN-{number // per_subject:08d}", name, sex, "IC1", "2024-01-15", "25-34", "generated"])
            if progress is not None and number % 1000 == 999:
                progress(number + 1)
    manifest = EnrolmentManifest.load(manifest_path)
    made = EnrolmentOutput.create(
        output,
        manifest,
        passphrase,
        model_id=model[0],
        model_sha256=model[1],
        batch_size=batch_size,
        upsample=0,
        kdf=kdf,
    )
    for batch in range(made.header.batches):
        outcomes = []
        for row in made.header.batch_rows(batch):
            _data, width, height = bases[row % BASES]
            vector = rng.standard_normal(NDIM).astype("<f4")
            vector /= np.linalg.norm(vector)
            outcomes.append(
                Outcome(
                    row,
                    "enrolled",
                    hashlib.sha256(numbered(bases[row % BASES][0], row)).hexdigest(),
                    "image/jpeg",
                    width,
                    height,
                    (width // 4, height // 4, 3 * width // 4, 3 * height // 4),
                    vector.tobytes(),
                )
            )
        made.write_part(batch, outcomes)
    made.write_checkpoint()
    return total
