"""The face engine: detect -> landmarks -> align -> quality -> embed, on one device.

``FaceEngine.open()`` loads and verifies the three models once; ``analyze`` runs the whole
pipeline on an RGB image. Models are never loaded at import time: the device is only known
at run time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from engine.errors import UsageError
from engine.faces.align import extract_face_chip
from engine.faces.detect import MAX_PIXELS, FaceDetector, upsampled_size
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
AUTO_UPSAMPLE_LIMIT = 2
"""``find_faces`` enlarges a photograph at most this many times (4x), and only when nothing was found."""
DOMINANT_AREA_RATIO = 1.5
"""A face is clearly dominant when the part of its box inside the photograph is at least this many
times that of every other face and it is the face nearest the image centre. Chosen on LFW as the
lowest ratio at which size alone never chose the wrong person (docs/benchmarks.md)."""


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


class Analyzer(Protocol):
    """What ``find_faces`` needs of a face engine (``FaceEngine`` or a stand-in with the same ``analyze``)."""

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]: ...


@dataclass(frozen=True)
class FoundFaces:
    """The faces of a photograph, the detector upsampling they were found at, and what was done to find them.

    ``note`` is a plain sentence when the photograph had to be enlarged, or could not be enlarged
    further within the detector's pixel budget; None when the faces were found as first asked.
    """

    faces: list[Face]
    upsample: int  # the level the faces come from (with no face: the last level tried)
    tried: tuple[int, ...]
    note: str | None = None

    @property
    def enlarged(self) -> bool:
        return bool(self.faces) and self.upsample > self.tried[0]


def _size_words(upsample: int) -> str:
    return "the photograph's own size" if upsample == 0 else f"{2**upsample}x enlargement"


def _levels_words(levels: Sequence[int]) -> str:
    words = [_size_words(level) for level in levels]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def find_faces(
    analyzer: Analyzer,
    rgb: NDArray[np.uint8],
    *,
    embed: bool = True,
    start: int = 0,
    max_pixels: int = MAX_PIXELS,
) -> FoundFaces:
    """Faces at whatever size the photograph holds them: at upsampling ``start``, then enlarged
    again (one level more each time, up to ``AUTO_UPSAMPLE_LIMIT``) only while nothing is found.

    The detector's window is 80 pixels, so a face smaller than that is found only enlarged. An
    enlargement that would take the image over ``max_pixels`` (the detector's budget) is not
    tried; the note says so. ``start`` itself is always tried: over the budget, the analyzer's
    own refusal (``ImageError``) names the limit.
    """
    if not 0 <= start <= MAX_UPSAMPLE:
        raise UsageError(f"upsample must be between 0 and {MAX_UPSAMPLE}, got {start}")
    rows, cols = int(rgb.shape[0]), int(rgb.shape[1])
    tried: list[int] = []
    level = start
    while True:
        faces = analyzer.analyze(rgb, upsample=level, embed=embed)
        tried.append(level)
        if faces:
            note = None
            if level > start:
                note = f"no face at {_levels_words(tried[:-1])}; found at {_size_words(level)}"
            return FoundFaces(faces, level, tuple(tried), note)
        level += 1
        if level > max(start, AUTO_UPSAMPLE_LIMIT):
            note = f"no face found at {_levels_words(tried)}" if len(tried) > 1 else None
            return FoundFaces([], tried[-1], tuple(tried), note)
        up_rows, up_cols = upsampled_size(rows, cols, level)
        if up_rows * up_cols > max_pixels:
            note = (
                f"no face found at {_levels_words(tried)}; not enlarged further: {_size_words(level)} would be "
                f"{up_cols}x{up_rows} pixels, over the detector's {max_pixels / 1e6:g}-megapixel limit"
            )
            return FoundFaces([], tried[-1], tuple(tried), note)


def visible_area(box: Box, image_shape: Sequence[int]) -> int:
    """Pixels of ``box`` inside an image of ``image_shape`` (dlib's boxes may reach past the edges)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    w = min(box.right, width - 1) - max(box.left, 0) + 1
    h = min(box.bottom, height - 1) - max(box.top, 0) + 1
    return w * h if w > 0 and h > 0 else 0


def dominant_face(faces: Sequence[Face], image_shape: Sequence[int]) -> Face | None:
    """The one face a photograph is of: its only face, or one clearly dominant; None when ambiguous.

    Clearly dominant: the face's visible area (its box inside the photograph, so a face cut by the
    edge counts for what shows) is at least ``DOMINANT_AREA_RATIO`` times every other face's, and it
    is strictly the nearest to the image centre. A reference photograph of a person often holds
    smaller faces in the background; two people of similar size, or a larger face off to the side
    of a central one, are ambiguous and left to a person.
    """
    if len(faces) <= 1:
        return faces[0] if faces else None
    by_area = sorted(faces, key=lambda f: visible_area(f.box, image_shape), reverse=True)
    largest, others = by_area[0], by_area[1:]
    if visible_area(largest.box, image_shape) < DOMINANT_AREA_RATIO * visible_area(others[0].box, image_shape):
        return None
    off = _off_centre(image_shape)
    return largest if off(largest) < min(off(f) for f in others) else None


def nearest_to_centre(faces: Sequence[Face], image_shape: Sequence[int]) -> Face | None:
    """The face whose box centre is nearest the image centre (ties: the earlier, more confident one)."""
    return min(faces, key=_off_centre(image_shape), default=None)


def _off_centre(image_shape: Sequence[int]) -> Callable[[Face], float]:
    """Squared distance of a face's box centre from the centre of an image of ``image_shape``."""
    cx, cy = (int(image_shape[1]) - 1) / 2.0, (int(image_shape[0]) - 1) / 2.0

    def off(face: Face) -> float:
        x, y = face.box.center
        return (x - cx) ** 2 + (y - cy) ** 2

    return off


@dataclass(frozen=True)
class ReferenceFace:
    """The face taken from a reference photograph (enrolment, an evaluation gallery), or why none was.

    ``reason`` is a stable code (``no_face``, ``several_faces``, ``no_face_at_point``,
    ``face_point_ambiguous``) and ``detail`` a sentence for people. ``chosen_by`` (one of
    ``engine.faces.types.FACE_CHOSEN_BY``) says how the face was chosen; None when none was.
    """

    found: FoundFaces
    face: Face | None
    reason: str | None = None
    detail: str | None = None
    chosen_by: str | None = None

    @property
    def chose_dominant(self) -> bool:
        """Whether the face was chosen among several as the clearly dominant one (not named by a person)."""
        return self.face is not None and self.chosen_by == "dominant"

    @property
    def named_by_person(self) -> bool:
        """Whether the face is the one a person named with a point on it."""
        return self.face is not None and self.chosen_by == "person"


def box_contains(box: Box, point: tuple[int, int], image_shape: Sequence[int]) -> bool:
    """Whether the pixel ``point`` (x, y) lies in ``box`` as clipped to an image of ``image_shape`` (inclusive)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    x, y = point
    return max(box.left, 0) <= x <= min(box.right, width - 1) and max(box.top, 0) <= y <= min(box.bottom, height - 1)


def reference_face(
    analyzer: Analyzer, rgb: NDArray[np.uint8], *, start: int = 0, point: tuple[int, int] | None = None
) -> ReferenceFace:
    """The face to enrol from a reference photograph, found at any size (``find_faces``), or a refusal saying why.

    Without ``point``: the only face or the clearly dominant one (``dominant_face``). With ``point``
    (x, y: whole pixels from the left and top of ``rgb``, the photograph as decoded for display,
    EXIF orientation applied): the one face whose box, clipped to the photograph, holds the point,
    whatever the dominant rule would say, even for a single face (a point outside it means the
    person looked at another photograph). Boxes found on an enlargement are already in ``rgb``'s
    own pixels (``FaceDetector.detect`` maps them down), so they compare with the point as they are.
    """
    found = find_faces(analyzer, rgb, embed=True, start=start)
    if not found.faces:
        why = found.note or "no face found"
        return ReferenceFace(found, None, "no_face", f"{why}: a reference image must show one face")
    if point is not None:
        return face_at_point(analyzer, rgb, found, point)
    face = dominant_face(found.faces, rgb.shape)
    if face is None:
        return ReferenceFace(
            found,
            None,
            "several_faces",
            f"{len(found.faces)} faces found and none clearly dominant: a reference image must show one face, "
            f"or one at least {DOMINANT_AREA_RATIO:g} times the size of any other and nearest the centre; "
            "or a person names the face (face_x, face_y in the enrolment metadata)",
        )
    return ReferenceFace(found, face, chosen_by="only" if len(found.faces) == 1 else "dominant")


def face_at_point(
    analyzer: Analyzer, rgb: NDArray[np.uint8], found: FoundFaces, point: tuple[int, int]
) -> ReferenceFace:
    """The one face holding the point a person named, among the faces ``find_faces`` found; else a refusal.

    ``find_faces`` stops enlarging at the first size where it finds any face, so a small face beside a large one
    (the person in the background a person named) is missed at that size. When no face found holds the point,
    the photograph is looked at again at each larger size, up to ``AUTO_UPSAMPLE_LIMIT`` and within the
    detector's pixel budget, until some face holds it.
    """
    x, y = point
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    faces = len(found.faces)
    if not (0 <= x < width and 0 <= y < height):
        return ReferenceFace(
            found,
            None,
            "no_face_at_point",
            f"{_named(point)} is outside the photograph, which is {width}x{height} pixels as displayed "
            f"({faces} face{'' if faces == 1 else 's'} found): give the point in pixels from its left and top",
        )
    chosen = _face_holding(found, point, rgb.shape)
    if chosen.reason != "no_face_at_point":
        return chosen
    tried = list(found.tried)
    for level in range(found.upsample + 1, AUTO_UPSAMPLE_LIMIT + 1):
        up_rows, up_cols = upsampled_size(height, width, level)
        if up_rows * up_cols > MAX_PIXELS:
            break
        tried.append(level)
        closer = FoundFaces(analyzer.analyze(rgb, upsample=level, embed=True), level, tuple(tried))
        again = _face_holding(closer, point, rgb.shape)
        if again.reason != "no_face_at_point":
            note = f"the face at the point found only at {_size_words(level)}"
            return ReferenceFace(replace(closer, note=note), again.face, again.reason, again.detail, again.chosen_by)
    if len(tried) == len(found.tried):
        return chosen
    looked = _levels_words(tried[len(found.tried) :])
    return ReferenceFace(chosen.found, None, chosen.reason, f"{chosen.detail} (looked for again at {looked})")


def _named(point: tuple[int, int]) -> str:
    return f"the point named (face_x {point[0]}, face_y {point[1]})"


def _face_holding(found: FoundFaces, point: tuple[int, int], image_shape: Sequence[int]) -> ReferenceFace:
    """The one found face whose box holds ``point`` (inside the photograph), or a refusal naming the point."""
    faces = len(found.faces)
    found_words = "the only face found" if faces == 1 else f"any of the {faces} faces found"
    holding = [f for f in found.faces if box_contains(f.box, point, image_shape)]
    if not holding:
        return ReferenceFace(
            found,
            None,
            "no_face_at_point",
            f"{_named(point)} is not in {found_words}: put the point on the face of the person the photograph is "
            "of (pixels from its left and top, as displayed), and check it is the right photograph",
        )
    if len(holding) > 1:
        return ReferenceFace(
            found,
            None,
            "face_point_ambiguous",
            f"{_named(point)} is in {len(holding)} of the {faces} faces found, where their boxes overlap: "
            "put the point on a part of the face that no other face covers",
        )
    return ReferenceFace(found, holding[0], chosen_by="person")
