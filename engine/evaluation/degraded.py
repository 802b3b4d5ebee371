"""Degraded probes: how the engine's error rates change when the Probe Image is small, blurred or compressed.

A probe of held-out LFW people is degraded (one condition at a time), run through the whole engine
again (detection with enlargement as the terminal does it, landmarks, chip, template) and compared
with clean images:

- mated: the degraded probe against every other clean image of the same person (never its own
  photograph); a probe whose face is no longer found counts as a miss in FNMR (and is reported as a
  failure to enrol), so the engine cannot look better by failing to find hard faces;
- non-mated: the degraded probe against every clean image of every other sampled person.

Conditions (``CONDITIONS``): the photograph as captured; reduced so the engine measures 16, 24, 32,
48 or 64 px between the eyes (LFW faces are captured at about 35-46 px, so 48 and 64 px are
*enlargements*, holding no more detail than the original, and are marked so); Gaussian blur of sigma
1, 2, 3 and 5 px; JPEG quality 50, 20 and 8; and a CCTV-like combination (``CCTV``). Rates carry
subject-bootstrap intervals (people resampled, every comparison of a drawn person along with them).

Templates stay in memory: worker processes return them to the parent, nothing is written to disk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from engine.errors import RfrError
from engine.evaluation.metrics import bootstrap_error_interval
from engine.scoring.applicability import StatedRate
from engine.scoring.statistics import Proportion, wilson

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

IED_LEVELS = (16, 24, 32, 48, 64)
BLUR_SIGMAS = (1, 2, 3, 5)
JPEG_QUALITIES = (50, 20, 8)


@dataclass(frozen=True)
class CctvRecipe:
    """A CCTV-like still: a small face, a little optical or motion blur, sensor noise, then heavy compression.

    Applied in the order a camera and recorder would: reduce to ``ied`` px between the eyes, blur at
    that size, add Gaussian noise (grey levels, per pixel and channel), encode as JPEG.
    """

    ied: float = 24.0
    blur_sigma: float = 1.0
    noise_sigma: float = 5.0
    jpeg_quality: int = 20

    def describe(self) -> str:
        return (
            f"CCTV-like: {self.ied:.0f} px between the eyes, blur sigma {self.blur_sigma:g} px, "
            f"noise sigma {self.noise_sigma:g}, JPEG quality {self.jpeg_quality}"
        )


CCTV = CctvRecipe()


@dataclass(frozen=True)
class Condition:
    """One way of degrading a probe: ``kind`` is clean, inter_eye_distance, blur, jpeg or cctv."""

    key: str
    kind: str
    label: str
    value: float | None = None


CONDITIONS: tuple[Condition, ...] = (
    Condition("clean", "clean", "as captured (LFW photographs)"),
    *(Condition(f"ied{v}", "inter_eye_distance", f"{v} px between the eyes", float(v)) for v in IED_LEVELS),
    *(Condition(f"blur{s}", "blur", f"Gaussian blur, sigma {s} px", float(s)) for s in BLUR_SIGMAS),
    *(Condition(f"jpeg{q}", "jpeg", f"JPEG quality {q}", float(q)) for q in JPEG_QUALITIES),
    Condition("cctv", "cctv", CCTV.describe()),
)
DEGRADED = tuple(c for c in CONDITIONS if c.kind != "clean")


# ---------------------------------------------------------------------------------------------
# Degradations (RGB uint8 in, RGB uint8 out)
# ---------------------------------------------------------------------------------------------


def resize_to_ied(rgb: npt.NDArray[np.uint8], ied: float, target: float) -> tuple[npt.NDArray[np.uint8], float]:
    """The image scaled so a face with ``ied`` px between the eyes has ``target``; and the scale.

    Reduction averages pixels (``INTER_AREA``, as a smaller sensor footprint would); enlargement
    interpolates (``INTER_CUBIC``) and adds no detail.
    """
    if ied <= 0 or target <= 0:
        raise ValueError(f"inter-eye distances must be positive, got {ied} and {target}")
    scale = target / ied
    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=method)), size[0] / width


def gaussian_blur(rgb: npt.NDArray[np.uint8], sigma: float) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(cv2.GaussianBlur(rgb, (0, 0), sigma))


def add_noise(rgb: npt.NDArray[np.uint8], sigma: float, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    noisy = rgb.astype(np.float64) + rng.normal(0.0, sigma, size=rgb.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg_roundtrip(rgb: npt.NDArray[np.uint8], quality: int) -> npt.NDArray[np.uint8]:
    """Encode as baseline JPEG at ``quality`` (OpenCV, 4:2:0) and decode with the engine's own loader."""
    from engine.faces.image_io import load_image

    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RfrError(f"JPEG encoding at quality {quality} failed")
    return load_image(encoded.tobytes(), name=f"JPEG quality {quality}").rgb


def degrade(
    rgb: npt.NDArray[np.uint8], condition: Condition, clean_ied: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], float]:
    """The probe under ``condition`` and the scale applied to it (1.0 unless resized)."""
    if condition.kind == "clean":
        return rgb, 1.0
    if condition.kind == "inter_eye_distance":
        assert condition.value is not None
        return resize_to_ied(rgb, clean_ied, condition.value)
    if condition.kind == "blur":
        assert condition.value is not None
        return gaussian_blur(rgb, condition.value), 1.0
    if condition.kind == "jpeg":
        assert condition.value is not None
        return jpeg_roundtrip(rgb, int(condition.value)), 1.0
    if condition.kind == "cctv":
        small, scale = resize_to_ied(rgb, clean_ied, CCTV.ied)
        out = add_noise(gaussian_blur(small, CCTV.blur_sigma), CCTV.noise_sigma, rng)
        return jpeg_roundtrip(out, CCTV.jpeg_quality), scale
    raise ValueError(f"unknown degradation kind {condition.kind!r}")


# ---------------------------------------------------------------------------------------------
# Running the engine (worker processes; templates return to the parent in memory)
# ---------------------------------------------------------------------------------------------

Quality = dict[str, tuple[float, bool]]
"""Engine quality measure name -> (value, within its threshold)."""


@dataclass(frozen=True)
class Seen:
    """What the engine made of one image: the chosen face's template and quality, or nothing."""

    template: npt.NDArray[np.float32] | None
    quality: Quality | None
    centre: tuple[float, float] | None = None
    width: float | None = None
    faces: int = 0
    scale: float = 1.0
    error: str | None = None

    @property
    def found(self) -> bool:
        return self.template is not None


_engine: Any = None


def worker_init(device: str) -> None:
    global _engine
    from engine.faces.pipeline import FaceEngine

    _engine = FaceEngine.open(device=device)


def _seen(face: Any, faces: int, scale: float = 1.0) -> Seen:
    quality: Quality = {m.name: (float(m.value), bool(m.ok)) for m in face.quality.measures}
    return Seen(
        np.asarray(face.embedding, dtype=np.float32),
        quality,
        face.box.center,
        float(face.box.width),
        faces,
        scale,
    )


def analyse_clean(job: tuple[int, str]) -> tuple[int, Seen]:
    """The face nearest the centre of a clean LFW image (the labelled person), as the evaluation's templates do."""
    from engine.faces.image_io import load_image
    from engine.faces.pipeline import nearest_to_centre

    index, path = job
    try:
        rgb = load_image(Path(path)).rgb
        faces = _engine.analyze(rgb, upsample=0, embed=True)
    except RfrError as exc:
        return index, Seen(None, None, error=exc.diagnostics())
    face = nearest_to_centre(faces, rgb.shape)
    return index, (Seen(None, None) if face is None else _seen(face, len(faces)))


def pick_face(faces: Sequence[Any], centre: tuple[float, float], width: float) -> Any | None:
    """The face at the labelled person's place: box centre nearest ``centre`` and within half a face width."""
    best = min(faces, key=lambda f: math.dist(f.box.center, centre), default=None)
    if best is None or math.dist(best.box.center, centre) > 0.5 * width:
        return None
    return best


@dataclass(frozen=True)
class ProbeJob:
    index: int
    path: str
    centre: tuple[float, float]
    width: float
    ied: float
    seed: int


def analyse_probe(job: ProbeJob) -> tuple[int, dict[str, Seen]]:
    """Every degraded condition of one probe through the whole engine, as the terminal analyses a Probe Image.

    Faces are found with ``find_faces`` (enlarged while none is found); the labelled person's face is
    the one where the clean face was, scaled. Not there: not found.
    """
    from engine.faces.image_io import load_image
    from engine.faces.pipeline import find_faces

    rgb = load_image(Path(job.path)).rgb
    out: dict[str, Seen] = {}
    for condition in DEGRADED:
        rng = np.random.default_rng([job.seed, job.index])
        try:
            image, scale = degrade(rgb, condition, job.ied, rng)
            found = find_faces(_engine, image, embed=True)
        except RfrError as exc:
            out[condition.key] = Seen(None, None, error=exc.diagnostics())
            continue
        centre = (job.centre[0] * scale, job.centre[1] * scale)
        face = pick_face(found.faces, centre, job.width * scale)
        out[condition.key] = (
            Seen(None, None, faces=len(found.faces), scale=scale)
            if face is None
            else _seen(face, len(found.faces), scale)
        )
    return job.index, out


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _multinomial_weights(people: int, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """How many times each person is drawn in each resample: (n_boot, people)."""
    return rng.multinomial(people, np.full(people, 1.0 / people), size=n_boot).astype(np.float64)


def _interval(replicates: FloatArray, confidence: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return 0.0, 1.0
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def cross_fmr_interval(
    false_probe_person: npt.ArrayLike,
    false_gallery_person: npt.ArrayLike,
    probes_per_person: npt.ArrayLike,
    gallery_per_person: npt.ArrayLike,
    excluded: Iterable[tuple[int, int]] = (),
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Subject-bootstrap interval of an FMR where probes of each person meet gallery images of every other person.

    Probes and gallery come from the same people, so one resample of people weights both sides: a
    pair of people (a, b) drawn w_a and w_b times brings w_a * w_b times their comparisons.
    ``excluded`` holds unordered pairs of people never compared (two names of one person).
    """
    fa = np.asarray(false_probe_person, dtype=np.int64)
    fb = np.asarray(false_gallery_person, dtype=np.int64)
    p = np.asarray(probes_per_person, dtype=np.float64)
    g = np.asarray(gallery_per_person, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 1 or p.size == 0:
        raise ValueError("probes_per_person and gallery_per_person must be 1-D of equal, non-zero length")
    w = _multinomial_weights(p.size, n_boot, np.random.default_rng(seed))
    trials = (w @ p) * (w @ g) - (w**2) @ (p * g)
    for a, b in excluded:
        trials -= w[:, a] * w[:, b] * (p[a] * g[b] + p[b] * g[a])
    events = np.zeros(n_boot)
    if fa.size:
        keys, counts = np.unique(fa * p.size + fb, return_counts=True)
        pa, pb = keys // p.size, keys % p.size
        events = (w[:, pa] * w[:, pb]) @ counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _interval(events / trials, confidence)


def _stated(proportion: Proportion) -> dict[str, Any]:
    rate = StatedRate(proportion.events, proportion.trials, proportion.low, proportion.high)
    return {**proportion.to_json(), "stated": rate.text()}


@dataclass(frozen=True)
class ConditionFigures:
    """A condition's error rates at the operating threshold, and what the engine measured on its probes."""

    condition: Condition
    people: int
    probes: int
    not_found: Proportion  # failure to enrol: probes whose face was not found (Wilson; one probe per person)
    fnmr: Proportion  # mated pairs missed, a probe not found counting as a miss on each of its pairs
    fnmr_compared: Proportion  # mated pairs missed among probes whose face was found
    fmr: Proportion  # non-mated pairs matched (found probes only)
    measured: Mapping[str, float]  # median engine quality measure over found probes
    quality_warned: Mapping[str, float]  # share of found probes with each measure's warning
    enlarged: float  # share of probes made by enlarging the photograph

    @property
    def citable_enlarged(self) -> bool:
        """Mostly enlargements: not a face captured at that size, never cited at run time."""
        return self.enlarged > 0.5

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.condition.key,
            "kind": self.condition.kind,
            "label": self.condition.label,
            "value": self.condition.value,
            "people": self.people,
            "probes": self.probes,
            "not_found": _stated(self.not_found),
            "fnmr": _stated(self.fnmr),
            "fnmr_compared": _stated(self.fnmr_compared),
            "fmr": _stated(self.fmr),
            "measured_median": dict(self.measured),
            "quality_warned": dict(self.quality_warned),
            "enlarged": self.enlarged,
        }

    def run_time_json(self) -> dict[str, Any]:
        """The fields ``engine.scoring.applicability`` reads."""
        return {
            "key": self.condition.key,
            "kind": self.condition.kind,
            "label": self.condition.label,
            "enlarged": self.citable_enlarged,
            "measured": {k: round(v, 3) for k, v in sorted(self.measured.items())},
            "people": self.people,
            "probes": self.probes,
            "not_found": self.not_found.events,
            "fnmr": {k: _round(v) for k, v in self.fnmr.to_json().items() if k in ("events", "trials", "low", "high")},
            "fmr": {k: _round(v) for k, v in self.fmr.to_json().items() if k in ("events", "trials", "low", "high")},
        }


def _round(value: Any) -> Any:
    return round(value, 8) if isinstance(value, float) else value


MEASURED = ("inter_eye_distance", "sharpness", "face_width")


def _distances(a: FloatArray, b: FloatArray) -> FloatArray:
    sq = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    return np.asarray(np.sqrt(np.maximum(sq, 0.0)), dtype=np.float64)


def condition_figures(
    condition: Condition,
    probes: Sequence[Seen],
    probe_person: npt.ArrayLike,
    probe_source: npt.ArrayLike,
    gallery: npt.ArrayLike,
    gallery_person: npt.ArrayLike,
    people: int,
    threshold: float,
    same_person: Iterable[tuple[int, int]] = (),
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> ConditionFigures:
    """FNMR, FMR and failure to enrol of one condition's probes against the clean gallery, at ``threshold``.

    ``probe_person``/``gallery_person`` index people ``0..people-1``; ``probe_source`` is the gallery
    row of each probe's own photograph (left out of its mated pairs; -1 when it is not in the gallery).
    ``same_person`` holds pairs of people indices that are one person (never compared).
    """
    owner = np.asarray(probe_person, dtype=np.int64)
    source = np.asarray(probe_source, dtype=np.int64)
    g = np.asarray(gallery, dtype=np.float64)
    g_owner = np.asarray(gallery_person, dtype=np.int64)
    if owner.shape != (len(probes),) or source.shape != owner.shape:
        raise ValueError("probe_person and probe_source need one entry per probe")
    if g.ndim != 2 or g_owner.shape != (g.shape[0],):
        raise ValueError("gallery must be (images, dims) with one person per image")
    aliases = {(min(a, b), max(a, b)) for a, b in same_person}
    found = np.array([s.found for s in probes], dtype=bool)
    dims = g.shape[1]
    x = np.array([s.template if s.template is not None else np.full(dims, np.nan) for s in probes], dtype=np.float64)

    # Mated: each probe against the other clean images of its person; not found counts as a miss on each.
    rows = np.arange(g.shape[0])
    mated_d: list[FloatArray] = []
    mated_subject: list[IntArray] = []
    mated_found: list[npt.NDArray[np.bool_]] = []
    for i in range(len(probes)):
        refs = rows[(g_owner == owner[i]) & (rows != source[i])]
        if refs.size == 0:
            continue
        d = _distances(x[i : i + 1], g[refs])[0] if found[i] else np.full(refs.size, np.inf)
        mated_d.append(d)
        mated_subject.append(np.full(refs.size, owner[i], dtype=np.int64))
        mated_found.append(np.full(refs.size, found[i]))
    d_all = np.concatenate(mated_d) if mated_d else np.empty(0)
    s_all = np.concatenate(mated_subject) if mated_subject else np.empty(0, dtype=np.int64)
    f_all = np.concatenate(mated_found) if mated_found else np.empty(0, dtype=bool)
    miss = ~(d_all <= threshold)
    method = f"subject bootstrap 95% ({n_boot} resamples)"
    low, high = bootstrap_error_interval(miss, s_all, n_boot=n_boot, seed=seed)
    fnmr = Proportion(int(miss.sum()), int(miss.size), low, high, method)
    low, high = bootstrap_error_interval(miss[f_all], s_all[f_all], n_boot=n_boot, seed=seed)
    fnmr_compared = Proportion(int(miss[f_all].sum()), int(f_all.sum()), low, high, method)

    # Non-mated: each found probe against every clean image of every other person.
    idx = np.flatnonzero(found)
    d = _distances(x[idx], g) if idx.size else np.empty((0, g.shape[0]))
    pa, pb = owner[idx][:, None], g_owner[None, :]
    compared = pa != pb
    for a, b in aliases:
        compared &= ~(((pa == a) & (pb == b)) | ((pa == b) & (pb == a)))
    hit = compared & (d <= threshold)
    hi, hj = np.nonzero(hit)
    probes_per = np.bincount(owner[idx], minlength=people)
    gallery_per = np.bincount(g_owner, minlength=people)
    low, high = cross_fmr_interval(
        owner[idx][hi], g_owner[hj], probes_per, gallery_per, aliases, n_boot=n_boot, seed=seed
    )
    fmr = Proportion(int(hit.sum()), int(compared.sum()), low, high, method)

    not_found = int((~found).sum())
    nf_low, nf_high = wilson(not_found, len(probes)).low, wilson(not_found, len(probes)).high
    seen = [s.quality for s in probes if s.quality is not None]
    measured = {m: float(np.median([q[m][0] for q in seen])) for m in MEASURED if seen and all(m in q for q in seen)}
    warned = {m: float(np.mean([not q[m][1] for q in seen])) for m in MEASURED if seen and all(m in q for q in seen)}
    return ConditionFigures(
        condition=condition,
        people=int(np.unique(owner).size),
        probes=len(probes),
        not_found=Proportion(not_found, len(probes), nf_low, nf_high, "Wilson 95% (one probe per person)"),
        fnmr=fnmr,
        fnmr_compared=fnmr_compared,
        fmr=fmr,
        measured=measured,
        quality_warned=warned,
        enlarged=float(np.mean([s.scale > 1.0 for s in probes])) if probes else 0.0,
    )
