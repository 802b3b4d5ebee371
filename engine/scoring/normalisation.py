"""Label-free score normalisation at run time: a fitted normaliser, hash-pinned, applied to pairs of templates.

The model places some faces closer together than others: at one threshold, different people of some
demographic groups are matched far more often than others. Two published post-comparison methods
correct a pair's distance by where its two templates fall among unsupervised clusters of templates,
so no demographic label is used, at fitting time or here:

- ``fsn``, fair score normalisation (Terhörst et al., Pattern Recognition Letters 2020): each
  cluster has its own threshold at the target false-match rate; a pair's distance moves by the mean
  of its two clusters' offsets from the global threshold (``shift``), so a pair inside a cluster
  matches at that cluster's threshold.
- ``faircal``, FairCal (Salvador et al., ICLR 2022): each cluster has its own calibration map
  (beta calibration) from score to probability of the same person; a pair's probability is the mean
  of its two clusters' maps weighted by their numbers of calibration pairs (``weight``), expressed as the
  distance the pooled map gives that probability, so normalised distances share the raw unit.

``Normaliser`` holds the cluster centres and the per-cluster figures, reads and verifies its file
(``models/normaliser.json``: canonical JSON carrying the sha256 of its own content, bound to one model
build) and applies them with numpy only. ``rerank`` orders a search's exact shortlist by normalised
distance. Fitting is offline evaluation (``engine.evaluation.normalisation``), never imported here.

The centres are means of at least ``MIN_PEOPLE_PER_CLUSTER`` different people's templates, checked
when fitted, so the file holds no one person's template.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import CalibrationError
from engine.faces.models import Manifest, models_dir

FORMAT = 1
NORMALISER_FILE = "normaliser.json"
METHODS = ("fsn", "faircal")
NDIM = 128
MIN_PEOPLE_PER_CLUSTER = 10
MAX_FILE_BYTES = 4_000_000
# FairCal calibrates a similarity in (0, 1): 1 - distance / SIMILARITY_SPAN, kept off 0 and 1 by SIMILARITY_EPS.
SIMILARITY_SPAN = 2.0
SIMILARITY_EPS = 1e-6
_BISECTIONS = 64

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEYS = (
    "format",
    "method",
    "model_id",
    "model_sha256",
    "fitted_on",
    "created_by",
    "target_fmr",
    "centroids",
    "shift",
    "weight",
    "maps",
    "pooled_map",
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class NormaliserError(CalibrationError):
    """A score normaliser file is missing, malformed, tampered with, or for another model build."""


def _fail(source: str, message: str) -> NormaliserError:
    return NormaliserError(f"score normaliser {source}: {message}")


def _logit(p: FloatArray) -> FloatArray:
    out: FloatArray = np.log(p) - np.log1p(-p)
    return out


def similarity(distance: npt.ArrayLike) -> FloatArray:
    """The similarity FairCal's maps take: ``1 - d / SIMILARITY_SPAN``, clipped into (0, 1)."""
    s = 1.0 - np.asarray(distance, dtype=np.float64) / SIMILARITY_SPAN
    out: FloatArray = np.clip(s, SIMILARITY_EPS, 1.0 - SIMILARITY_EPS)
    return out


def beta_log_odds(params: npt.ArrayLike, distance: npt.ArrayLike) -> FloatArray:
    """Log-odds of "same person" under beta calibration ``(a, b, c)``: ``a ln s - b ln(1 - s) + c``.

    ``a, b >= 0`` makes it non-decreasing in similarity (non-increasing in distance).
    """
    a, b, c = (float(x) for x in np.asarray(params, dtype=np.float64))
    s = similarity(distance)
    out: FloatArray = a * np.log(s) - b * np.log1p(-s) + c
    return out


@dataclass(frozen=True)
class Normaliser:
    """A fitted label-free score normaliser for one model build; see the module docstring.

    ``target_fmr`` is the false-match rate fsn's cluster thresholds were set at (FairCal's maps do not
    depend on it; it records the operating point it was fitted for). The operating threshold on
    normalised distances is not held here: like the raw one, it is derived from a calibration of
    normalised distances. ``shift`` (fsn) and ``weight``/``maps``/``pooled_map`` (faircal) are per
    cluster, in the order of ``centroids``.
    """

    method: str
    model_id: str
    model_sha256: str
    fitted_on: str
    created_by: str
    target_fmr: float
    centroids: tuple[tuple[float, ...], ...]
    shift: tuple[float, ...] = ()
    weight: tuple[float, ...] = ()
    maps: tuple[tuple[float, float, float], ...] = ()
    pooled_map: tuple[float, ...] = ()
    source: str = field(default="(in memory)", compare=False)

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise _fail(self.source, problem)

    def _problem(self) -> str | None:
        if self.method not in METHODS:
            return f"method {self.method!r} is not one of {', '.join(METHODS)}"
        if not _SHA256.match(self.model_sha256):
            return "model_sha256 must be 64 lowercase hex digits"
        if not 0.0 < self.target_fmr < 1.0:
            return f"target_fmr must be between 0 and 1, got {self.target_fmr}"
        k = len(self.centroids)
        if k < 1 or any(len(row) != NDIM for row in self.centroids):
            return f"centroids must be one or more rows of {NDIM} numbers"
        if not np.all(np.isfinite(self.centre_array)):
            return "centroids must be finite numbers"
        if self.method == "fsn":
            if len(self.shift) != k or not all(math.isfinite(x) for x in self.shift):
                return f"shift must hold one finite number per cluster ({k})"
            if self.weight or self.maps or self.pooled_map:
                return "an fsn normaliser holds no weight, maps or pooled_map"
        else:
            if len(self.weight) != k or not all(math.isfinite(x) and x > 0 for x in self.weight):
                return f"weight must hold one positive number per cluster ({k})"
            if len(self.maps) != k or any(len(m) != 3 for m in self.maps) or len(self.pooled_map) != 3:
                return f"maps must hold one [a, b, c] per cluster ({k}) and pooled_map one [a, b, c]"
            for params in (*self.maps, tuple(self.pooled_map)):
                if not all(math.isfinite(x) for x in params) or params[0] < 0 or params[1] < 0:
                    return "each calibration map [a, b, c] needs finite numbers with a >= 0 and b >= 0"
            if self.pooled_map[0] + self.pooled_map[1] <= 0:
                return "pooled_map must depend on the score (a + b > 0)"
            if self.shift:
                return "a faircal normaliser holds no shift"
        return None

    # ---- identity ----

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "method": self.method,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "fitted_on": self.fitted_on,
            "created_by": self.created_by,
            "target_fmr": self.target_fmr,
            "centroids": [list(row) for row in self.centroids],
            "shift": list(self.shift),
            "weight": list(self.weight),
            "maps": [list(m) for m in self.maps],
            "pooled_map": list(self.pooled_map),
        }

    @cached_property
    def content_sha256(self) -> str:
        """sha256 of the canonical JSON of the content (the file carries it; the model manifest pins the file)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()

    @property
    def id(self) -> str:
        """``norm-<method>-<first 12 hex of the content hash>``: the same fit gives the same id."""
        return f"norm-{self.method}-{self.content_sha256[:12]}"

    def to_json(self) -> str:
        """The file text: same normaliser, same bytes."""
        data = self.to_dict()
        data["content_sha256"] = self.content_sha256
        return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=True) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")

    def check_model(self, model_id: str, model_sha256: str) -> None:
        """Refuse to normalise distances from any model build but the one this normaliser was fitted on."""
        if model_id != self.model_id or model_sha256 != self.model_sha256:
            raise NormaliserError(
                f"score normaliser {self.id} was fitted on model {self.model_id} ({self.model_sha256[:12]}), not "
                f"on the loaded {model_id} ({model_sha256[:12]}); refit it with scripts/evaluate_normalisation.py"
            )

    # ---- applying it ----

    @cached_property
    def centre_array(self) -> FloatArray:
        return np.asarray(self.centroids, dtype=np.float64).reshape(len(self.centroids), -1)

    @cached_property
    def _centre_sq(self) -> FloatArray:
        out: FloatArray = np.einsum("ij,ij->i", self.centre_array, self.centre_array)
        return out

    @property
    def k(self) -> int:
        return len(self.centroids)

    def clusters(self, templates: npt.ArrayLike) -> IntArray:
        """The nearest cluster centre of each template (ties to the lower index)."""
        x = np.asarray(templates, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != NDIM or not np.all(np.isfinite(x)):
            raise NormaliserError(f"templates must be finite rows of {NDIM} numbers, got shape {x.shape}")
        d2 = self._centre_sq[None, :] - 2.0 * (x @ self.centre_array.T)
        out: IntArray = np.argmin(d2, axis=1).astype(np.int64)
        return out

    def normalise(self, distance: npt.ArrayLike, cluster_a: npt.ArrayLike, cluster_b: npt.ArrayLike) -> FloatArray:
        """Normalised distances of pairs given their raw distances and their two templates' clusters."""
        d = np.asarray(distance, dtype=np.float64)
        a = np.asarray(cluster_a, dtype=np.int64)
        b = np.asarray(cluster_b, dtype=np.int64)
        if self.method == "fsn":
            shift = np.asarray(self.shift, dtype=np.float64)
            out: FloatArray = d + 0.5 * (shift[a] + shift[b])
            return out
        return self._faircal(d, a, b)

    def _faircal(self, d: FloatArray, a: IntArray, b: IntArray) -> FloatArray:
        maps = np.asarray(self.maps, dtype=np.float64)
        weight = np.asarray(self.weight, dtype=np.float64)
        s = similarity(d)
        ls, l1s = np.log(s), np.log1p(-s)

        def prob(k: IntArray) -> FloatArray:
            z = maps[k, 0] * ls - maps[k, 1] * l1s + maps[k, 2]
            out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
            return out

        wa, wb = weight[a], weight[b]
        p = (wa * prob(a) + wb * prob(b)) / (wa + wb)
        return self.pooled_distance(p)

    def pooled_distance(self, probability: npt.ArrayLike) -> FloatArray:
        """The distance the pooled map gives ``probability`` (its inverse, by bisection): FairCal in distance units.

        Clipped to the distances the map is defined on, ``[0, SIMILARITY_SPAN]``.
        """
        p = np.clip(np.asarray(probability, dtype=np.float64), 1e-300, 1.0 - 1e-16)
        target = _logit(p)
        lo = np.zeros_like(target)
        hi = np.full_like(target, SIMILARITY_SPAN)
        params = np.asarray(self.pooled_map, dtype=np.float64)
        for _ in range(_BISECTIONS):  # log-odds fall as the distance grows
            mid = 0.5 * (lo + hi)
            above = beta_log_odds(params, mid) > target
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        out: FloatArray = 0.5 * (lo + hi)
        return out

    def pair(self, template_a: npt.ArrayLike, template_b: npt.ArrayLike) -> float:
        """The normalised distance of one pair of templates."""
        x = np.asarray(template_a, dtype=np.float64).reshape(1, -1)
        y = np.asarray(template_b, dtype=np.float64).reshape(1, -1)
        c = self.clusters(np.vstack([x, y]))
        d = float(np.linalg.norm(x - y))
        return float(self.normalise(np.array([d]), c[:1], c[1:])[0])

    def distances(self, probe: npt.ArrayLike, references: npt.ArrayLike) -> FloatArray:
        """Normalised distances from one probe template to each reference template."""
        p = np.asarray(probe, dtype=np.float64).reshape(1, -1)
        r = np.asarray(references, dtype=np.float64)
        if r.ndim != 2:
            raise NormaliserError(f"references must be rows of {NDIM} numbers, got shape {r.shape}")
        if r.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        clusters = self.clusters(np.vstack([p, r]))
        d = np.sqrt(np.maximum(np.einsum("ij,ij->i", r - p, r - p), 0.0))
        return self.normalise(d, np.full(r.shape[0], clusters[0]), clusters[1:])


@dataclass(frozen=True)
class Reranked:
    """A shortlist in normalised order: template ids, normalised and raw distances, and the positions taken."""

    keys: npt.NDArray[np.uint64]
    distance: FloatArray
    raw_distance: FloatArray
    order: IntArray


def rerank(
    normaliser: Normaliser,
    probe: npt.ArrayLike,
    keys: npt.ArrayLike,
    vectors: npt.ArrayLike,
    top_k: int,
) -> Reranked:
    """Order an exact shortlist (template ids and their templates) by normalised distance to ``probe``.

    Ties go to the lower template id, as the raw ranking does. ``order`` indexes the inputs, so the
    caller can carry the rows' other fields (owning library, vector) along. Only the shortlist is
    re-ranked: a search asks its index for more candidates than it shows (``oversample``), and the
    normalised order is taken over all of them before the list is cut to ``top_k``.
    """
    if top_k < 1:
        raise NormaliserError(f"top_k must be 1 or more, got {top_k}")
    ids = np.asarray(keys, dtype=np.uint64)
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != ids.size:
        raise NormaliserError(f"one template per id is needed: {ids.size} ids, templates of shape {v.shape}")
    p = np.asarray(probe, dtype=np.float64).reshape(-1)
    raw = np.sqrt(np.maximum(np.einsum("ij,ij->i", v - p, v - p), 0.0)) if ids.size else np.zeros(0)
    normalised = normaliser.distances(p, v)
    order: IntArray = np.lexsort((ids, normalised))[:top_k].astype(np.int64)
    return Reranked(ids[order], normalised[order], raw[order], order)


# ---- reading the file ----


def _number(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(source, f"{key} must hold numbers")
    return float(value)


def _row(value: Any, key: str, source: str) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise _fail(source, f"{key} must be a list of numbers")
    return tuple(_number(x, key, source) for x in value)


def parse_normaliser(text: str, source: str = "(text)") -> Normaliser:
    """Parse and verify a normaliser's JSON text (structure, figures, content hash)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise _fail(source, "not valid JSON; regenerate it with scripts/evaluate_normalisation.py") from None
    if not isinstance(data, dict):
        raise _fail(source, "not a score normaliser file (expected a JSON object)")
    missing = [k for k in (*_KEYS, "content_sha256") if k not in data]
    if missing:
        raise _fail(source, f"missing key {missing[0]!r}; regenerate it with scripts/evaluate_normalisation.py")
    unknown = sorted(str(k) for k in data if k not in (*_KEYS, "content_sha256"))
    if unknown:
        raise _fail(source, f"unknown key {unknown[0]!r}")
    if data["format"] != FORMAT:
        raise _fail(source, f"format {data['format']!r} is not supported (expected {FORMAT}); refit it")
    for key in ("method", "model_id", "model_sha256", "fitted_on", "created_by", "content_sha256"):
        if not isinstance(data[key], str):
            raise _fail(source, f"{key} must be text")
    for key in ("centroids", "maps"):
        if not isinstance(data[key], list):
            raise _fail(source, f"{key} must be a list of rows")
    maps = tuple(_row(m, "maps", source) for m in data["maps"])
    if any(len(m) != 3 for m in maps):
        raise _fail(source, "maps must hold rows of [a, b, c]")
    normaliser = Normaliser(
        method=data["method"],
        model_id=data["model_id"],
        model_sha256=data["model_sha256"],
        fitted_on=data["fitted_on"],
        created_by=data["created_by"],
        target_fmr=_number(data["target_fmr"], "target_fmr", source),
        centroids=tuple(_row(r, "centroids", source) for r in data["centroids"]),
        shift=_row(data["shift"], "shift", source),
        weight=_row(data["weight"], "weight", source),
        maps=tuple((m[0], m[1], m[2]) for m in maps),
        pooled_map=_row(data["pooled_map"], "pooled_map", source),
        source=source,
    )
    if data["content_sha256"] != normaliser.content_sha256:
        raise _fail(source, "content hash does not match: the file was changed by hand; regenerate it")
    return normaliser


def load_normaliser(path: str | Path) -> Normaliser:
    """Read and verify a normaliser file (its own content hash; the manifest pin is ``load_verified_normaliser``)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _fail(
            str(path), f"cannot be read ({exc.strerror or exc}); run scripts/evaluate_normalisation.py"
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(str(path), f"larger than {MAX_FILE_BYTES:,} bytes; this is not a score normaliser file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(str(path), "not UTF-8 text") from None
    return parse_normaliser(text, str(path))


def load_verified_normaliser(directory: Path | None = None) -> Normaliser:
    """The installed normaliser, hash-checked against the model manifest (it changes which candidates come first)."""
    directory = directory or models_dir()
    manifest = Manifest.load(directory / "manifest.yaml")
    data = manifest.read_verified(directory, NORMALISER_FILE)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(str(directory / NORMALISER_FILE), "not UTF-8 text") from None
    return parse_normaliser(text, str(directory / NORMALISER_FILE))
