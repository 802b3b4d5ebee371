"""The face engine: detect -> landmarks -> align -> quality -> embed, on one device.

``FaceEngine.open()`` loads and verifies the three models once; ``analyze`` runs the whole
pipeline on an RGB image. Models are never loaded at import time: the device is only known
at run time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import UsageError
from engine.faces.align import extract_face_chip
from engine.faces.detect import FaceDetector
from engine.faces.dlib_format import ShapePredictorArrays
from engine.faces.embed import FaceEmbedder
from engine.faces.landmarks import ShapePredictor
from engine.faces.models import Manifest, ModelLoader, execution_devices, models_dir
from engine.faces.quality import assess_quality
from engine.faces.types import Box, Detection, Face

MODEL_ID = "dlib_face_recognition_resnet_model_v1"
# The MMOD input layer's mean RGB, as stored in mmod_human_face_detector.dat.
MMOD_AVG = (122.78199768066406, 117.0009994506836, 104.2979965209961)
MMOD_NMS_THRESHOLD = 0.3382761351109955
MAX_UPSAMPLE = 3


@dataclass(frozen=True)
class ModelInfo:
    """What a template or a result must record so it can be reproduced."""

    model_id: str
    model_sha256: str
    device: str
    execution_devices: tuple[str, ...]


def model_identity(directory: Path | None = None) -> tuple[str, str]:
    """The face model's id and sha256 as its manifest names them (as ``FaceEngine.open`` does), not loading it."""
    return MODEL_ID, Manifest.load((directory or models_dir()) / "manifest.yaml").model_sha256("face_resnet")


class FaceEngine:
    """Finds faces, measures their quality and makes templates."""

    def __init__(
        self,
        detector: FaceDetector,
        predictor: ShapePredictor,
        embedder: FaceEmbedder,
        info: ModelInfo,
    ) -> None:
        self._detector = detector
        self._predictor = predictor
        self._embedder = embedder
        self.info = info

    @classmethod
    def open(cls, device: str | None = None, models_dir: Path | None = None) -> FaceEngine:
        loader = ModelLoader(device, models_dir)
        resnet = loader.compile("face_resnet")
        mmod = loader.compile("mmod_detector")
        request = mmod.create_infer_request()
        lock = threading.Lock()

        def score_map(tensor: np.ndarray) -> np.ndarray:
            with lock:
                return np.array(next(iter(request.infer({0: tensor}).values())))

        arrays = ShapePredictorArrays(**loader.arrays("shape_predictor_5"))
        devices = tuple(dict.fromkeys(execution_devices(resnet) + execution_devices(mmod)))
        info = ModelInfo(MODEL_ID, loader.manifest.model_sha256("face_resnet"), loader.device, devices)
        return cls(
            FaceDetector(score_map, MMOD_AVG, MMOD_NMS_THRESHOLD), ShapePredictor(arrays), FaceEmbedder(resnet), info
        )

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def model_sha256(self) -> str:
        return self.info.model_sha256

    @property
    def device_used(self) -> str:
        """The device(s) inference actually runs on, e.g. ``CPU`` (what AUTO chose)."""
        return ",".join(self.info.execution_devices) or self.info.device

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Detection]:
        if not 0 <= upsample <= MAX_UPSAMPLE:
            raise UsageError(f"upsample must be between 0 and {MAX_UPSAMPLE}, got {upsample}")
        return self._detector.detect(rgb, upsample=upsample)

    def landmarks(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        if not boxes:
            return np.zeros((0, 5, 2), dtype=np.int64)
        return self._predictor.predict_many(rgb, list(boxes))

    def chips(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return (
            np.stack([extract_face_chip(rgb, pts) for pts in landmarks])
            if len(landmarks)
            else np.zeros((0, 150, 150, 3), np.uint8)
        )

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        return self._embedder.embed(chips)

    def faces_at(
        self, rgb: np.ndarray, detections: Sequence[Detection], embed: bool = True, quality: bool = True
    ) -> list[Face]:
        """Landmarks, quality and (optionally) templates for given detections."""
        pts = self.landmarks(rgb, [d.box for d in detections])
        faces = [
            Face(d.box, d.confidence, p, assess_quality(rgb, d.box, p) if quality else None)
            for d, p in zip(detections, pts, strict=True)
        ]
        if embed and faces:
            for face, vec in zip(faces, self.embed_chips(self.chips(rgb, pts)), strict=True):
                face.embedding = vec
        return faces

    def analyze(self, rgb: np.ndarray, upsample: int = 0, embed: bool = True, quality: bool = True) -> list[Face]:
        """Every face in the image, most confident first. No face is an empty list, not an error."""
        return self.faces_at(rgb, self.detect(rgb, upsample), embed=embed, quality=quality)


def largest_face(faces: Sequence[Face]) -> Face | None:
    return max(faces, key=lambda f: f.box.area, default=None)
