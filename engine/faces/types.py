"""Value types shared by the face engine stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FACE_CHOSEN_BY = ("only", "dominant", "person")
"""How a reference photograph's face was chosen: its only face, the clearly dominant one, or the one a person named."""


@dataclass(frozen=True)
class Box:
    """A face rectangle in image pixels, dlib's convention: inclusive corners."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0)

    def as_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]


@dataclass(frozen=True)
class Detection:
    """One face found by the detector: its box and the detector's raw confidence."""

    box: Box
    confidence: float


@dataclass(frozen=True)
class QualityMeasure:
    """One measured aspect of face image quality, with a plain-language warning when poor."""

    name: str
    value: float
    unit: str
    ok: bool
    warning: str | None = None


@dataclass(frozen=True)
class FaceQuality:
    """Face image quality: what the Match Report must discuss about a Probe Image."""

    measures: tuple[QualityMeasure, ...]

    @property
    def warnings(self) -> list[str]:
        return [m.warning for m in self.measures if m.warning]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {m.name: {"value": round(m.value, 4), "unit": m.unit, "ok": m.ok} for m in self.measures}
        out["warnings"] = self.warnings
        return out


@dataclass
class Face:
    """A face in an image: detection, 5 landmarks, quality and (optionally) its template."""

    box: Box
    confidence: float
    landmarks: np.ndarray  # (5, 2) int: dlib's 5-point order, image pixel coordinates
    quality: FaceQuality | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)  # (128,) float32

    def to_json(self, with_embedding: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": self.box.as_list(),
            "confidence": round(float(self.confidence), 6),
            "landmarks": [[int(x), int(y)] for x, y in self.landmarks],
        }
        if self.quality is not None:
            out["quality"] = self.quality.to_json()
        if with_embedding and self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        return out
