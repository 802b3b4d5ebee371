"""A deterministic stand-in for the face engine, for tests of the library layer and casework (never shipped in engine/).

It is not face recognition. Its "template" is the image shrunk to 16 x 8 grey levels, so
similar pictures get near templates and identical pictures identical ones; it "finds" no face
in a nearly black image, two faces in a strongly red one, and one face otherwise. Its model id
and hash are its own, so templates it makes are never searched with the real engine's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engine.errors import ImageError
from engine.faces.types import Box, Face

SYNTHETIC_MODEL_ID = "synthetic-test-engine-v1"


class SyntheticFaceEngine:
    """Implements ``engine.library.enrol.FaceAnalyzer`` without any model."""

    def __init__(self, model_id: str = SYNTHETIC_MODEL_ID) -> None:
        self._model_id = model_id
        self._model_sha256 = hashlib.sha256(model_id.encode()).hexdigest()
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def model_sha256(self) -> str:
        return self._model_sha256

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        import cv2

        self.calls += 1
        height, width = rgb.shape[:2]
        channels = rgb.reshape(-1, 3).mean(axis=0)
        if channels.mean() < 10:
            count = 0
        elif channels[0] > 2.5 * max(channels[1], channels[2], 1.0):
            count = 2
        else:
            count = 1
        embedding: NDArray[np.float32] | None = None
        if embed and count:
            grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
            small = cv2.resize(grey, (16, 8), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
            embedding = ((small - 128.0) / 128.0 / np.sqrt(128.0) * 4.0).astype(np.float32)
        faces = []
        for i in range(count):
            box = Box(i * width // 2, 0, (i + 1) * width // count - 1, height - 1)
            cx, cy = box.center
            landmarks = np.array([[cx - 10, cy], [cx - 4, cy], [cx + 10, cy], [cx + 4, cy], [cx, cy + 10]], dtype=int)
            faces.append(Face(box, 1.0, landmarks, None, None if embedding is None else embedding.copy()))
        return faces


def load_rgb_with_opencv(data: bytes, name: str) -> NDArray[np.uint8]:
    """Decode image bytes to RGB with OpenCV (the loader used with ``SyntheticFaceEngine``)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"{name} cannot be decoded as an image")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def synthetic_jpeg(seed: int, variant: int = 0, kind: str = "face", size: int = 64) -> bytes:
    """A small JPEG the synthetic engine reads as one face (``kind="face"``), none or two.

    Images with the same ``seed`` share a pattern (the same "person"); ``variant`` adds noise,
    so their templates are near but not identical.
    """
    import cv2

    base = np.random.default_rng(seed).integers(40, 216, size=(8, 8, 3)).astype(np.float32)
    image = np.asarray(cv2.resize(base, (size, size), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    image += np.random.default_rng((seed, variant)).normal(0, 6, size=image.shape)
    if kind == "none":
        image *= 0.02
    elif kind == "pair":
        image[..., 1:] *= 0.1
        image[..., 0] = np.maximum(image[..., 0], 120)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return bytes(encoded.tobytes())


def write_subject_folders(root: Path, subjects: dict[str, int], *, seed: int = 0) -> dict[str, list[Path]]:
    """Write ``{reference: image count}`` as one folder of synthetic JPEGs per subject."""
    written: dict[str, list[Path]] = {}
    for number, (reference, count) in enumerate(sorted(subjects.items())):
        folder = root / reference
        folder.mkdir(parents=True, exist_ok=True)
        written[reference] = []
        for variant in range(count):
            path = folder / f"{reference}_{variant + 1:04d}.jpg"
            path.write_bytes(synthetic_jpeg(seed * 100_003 + number, variant))
            written[reference].append(path)
    return written
