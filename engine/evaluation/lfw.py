"""The LFW standard verification protocol: pairs, ten-fold accuracy, and the missing-face policy.

``pairs.txt`` holds 10 folds of 300 matched and 300 mismatched pairs. The protocol's figure
is ten-fold accuracy: for each fold, the distance threshold is chosen on the other nine
folds (the one that maximises their accuracy) and the accuracy is measured on the held-out
fold; the mean and standard deviation over the ten folds are reported.

Decision rule: a pair is "same person" when its distance is ``<= threshold`` (as
``face_recognition.compare_faces`` does) and is finite.

Missing-face policy: when no face is found in one or both images of a pair, the pair gets
distance ``MISSING_FACE_DISTANCE`` (+inf), i.e. it is always judged "different person",
which is what a terminal would conclude when it cannot make a template. Such pairs stay in
the denominator (a matched pair with a missing face counts as an error), and the number of
images without a face and of pairs affected is reported beside the accuracy, so a system
cannot look better by failing to find hard faces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import RfrError
from engine.faces.types import Box

MISSING_FACE_DISTANCE = math.inf
"""Distance given to a pair when either image has no face: always 'different person'."""

FloatArray = npt.NDArray[np.float64]


class PairsFileError(RfrError):
    """The LFW pairs file is missing or not in the standard format."""


@dataclass(frozen=True)
class LfwPair:
    """One verification pair: two image paths relative to the LFW root, the truth, and its fold (0-based)."""

    first: str
    second: str
    same: bool
    fold: int


def image_path(name: str, number: int) -> str:
    """The path of image ``number`` of person ``name``, relative to the LFW root."""
    return f"images/{name}/{name}_{number:04d}.jpg"


def _positive_int(text: str, line_no: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise PairsFileError(
            f"pairs file line {line_no}: {text!r} is not a whole number; use the standard pairs.txt"
        ) from None
    if value < 1:
        raise PairsFileError(f"pairs file line {line_no}: {value} must be 1 or more; use the standard pairs.txt")
    return value


def parse_pairs(text: str) -> list[LfwPair]:
    """Parse the text of ``pairs.txt``: a header ``folds per_fold``, then per fold the matched then mismatched pairs.

    Matched lines are ``name n1 n2``, mismatched lines ``name1 n1 name2 n2`` (tab or space separated).
    Every fold must hold exactly ``per_fold`` matched and ``per_fold`` mismatched pairs.
    """
    lines = [(no, line.split()) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise PairsFileError("pairs file is empty; point at the LFW pairs.txt")
    header_no, header = lines[0]
    if len(header) != 2:
        raise PairsFileError(f"pairs file line {header_no}: expected the header 'folds pairs_per_fold'")
    n_folds, per_fold = (_positive_int(field, header_no) for field in header)
    body = lines[1:]
    if len(body) != 2 * n_folds * per_fold:
        raise PairsFileError(
            f"pairs file has {len(body)} pairs but its header promises {n_folds} folds of {per_fold}+{per_fold}; "
            "use an unmodified pairs.txt"
        )
    pairs: list[LfwPair] = []
    for index, (no, fields) in enumerate(body):
        fold = index // (2 * per_fold)
        expect_same = index % (2 * per_fold) < per_fold
        if len(fields) == 3 and expect_same:
            name, n1, n2 = fields
            pairs.append(
                LfwPair(image_path(name, _positive_int(n1, no)), image_path(name, _positive_int(n2, no)), True, fold)
            )
        elif len(fields) == 4 and not expect_same:
            name1, n1, name2, n2 = fields
            pairs.append(
                LfwPair(image_path(name1, _positive_int(n1, no)), image_path(name2, _positive_int(n2, no)), False, fold)
            )
        else:
            kind = "matched 'name n1 n2'" if expect_same else "mismatched 'name1 n1 name2 n2'"
            raise PairsFileError(f"pairs file line {no}: expected a {kind} pair here; use an unmodified pairs.txt")
    return pairs


def load_pairs(path: Path) -> list[LfwPair]:
    """Read and parse a ``pairs.txt`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise PairsFileError(f"cannot read the LFW pairs file {path}: {reason}; check RFR_DATA") from None
    return parse_pairs(text)


def unique_images(pairs: Sequence[LfwPair]) -> list[str]:
    """Every image the pairs refer to, once each, sorted."""
    return sorted({p.first for p in pairs} | {p.second for p in pairs})


def nearest_to_centre(boxes: Sequence[Box], width: int, height: int) -> int | None:
    """Index of the box whose centre is nearest the image centre (LFW's labelled person); None if no boxes.

    Box centres use inclusive pixel coordinates, so the image centre is ((width-1)/2, (height-1)/2).
    Ties go to the earlier box (detectors list the most confident first).
    """
    if not boxes:
        return None
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    squared = [(b.center[0] - cx) ** 2 + (b.center[1] - cy) ** 2 for b in boxes]
    return min(range(len(boxes)), key=lambda i: (squared[i], i))


def pair_distances(pairs: Sequence[LfwPair], templates: Mapping[str, npt.NDArray[Any] | None]) -> FloatArray:
    """Euclidean distance per pair; ``MISSING_FACE_DISTANCE`` where either image has no template (None).

    Every image of every pair must be a key of ``templates``.
    """
    out = np.empty(len(pairs), dtype=np.float64)
    for i, pair in enumerate(pairs):
        a, b = templates[pair.first], templates[pair.second]
        if a is None or b is None:
            out[i] = MISSING_FACE_DISTANCE
        else:
            out[i] = float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
    return out


def _as_arrays(
    distances: npt.ArrayLike, same: npt.ArrayLike, folds: npt.ArrayLike | None = None
) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same, dtype=np.bool_)
    f = np.zeros(d.shape, dtype=np.int64) if folds is None else np.asarray(folds, dtype=np.int64)
    if d.ndim != 1 or d.shape != s.shape or d.shape != f.shape:
        raise ValueError(f"distances, same and folds must be 1-D of equal length, got {d.shape}, {s.shape}, {f.shape}")
    if d.size == 0:
        raise ValueError("no pairs to evaluate")
    if np.isnan(d).any() or (d == -np.inf).any():
        raise ValueError("distances must be numbers or +inf (missing face), not NaN or -inf")
    return d, s, f


def _predict_same(d: FloatArray, threshold: float) -> npt.NDArray[np.bool_]:
    return np.isfinite(d) & (d <= threshold)


def accuracy_at(distances: npt.ArrayLike, same: npt.ArrayLike, threshold: float) -> float:
    """Fraction of pairs judged correctly when 'same person' means a finite distance ``<= threshold``."""
    d, s, _ = _as_arrays(distances, same)
    return float(np.mean(_predict_same(d, threshold) == s))


def choose_threshold(distances: npt.ArrayLike, same: npt.ArrayLike) -> tuple[float, float]:
    """The threshold that maximises accuracy on these pairs, and that accuracy.

    Candidates are the midpoints between consecutive distinct finite distances, plus one value
    below the smallest (accept nothing) and one above the largest (accept every finite distance).
    Ties go to the smallest candidate: the stricter threshold, with fewer false matches.
    With no finite distance at all, every pair is judged different and the threshold is 0.
    """
    d, s, _ = _as_arrays(distances, same)
    n_diff = int(np.count_nonzero(~s))
    finite = np.isfinite(d)
    if not finite.any():
        return 0.0, n_diff / d.size
    order = np.argsort(d[finite], kind="stable")
    fd, fs = d[finite][order], s[finite][order]
    cum_same = np.cumsum(fs)
    cum_diff = np.cumsum(~fs)
    # A cut after index i accepts fd[:i+1]; only cuts at the end of a run of equal values are possible.
    ends = np.flatnonzero(np.append(fd[1:] > fd[:-1], True))
    correct = cum_same[ends] + (n_diff - cum_diff[ends])
    lower, upper = fd[ends[:-1]], fd[ends[:-1] + 1]
    mids = lower + (upper - lower) / 2.0
    mids = np.where(mids < upper, mids, lower)  # adjacent floats: the midpoint may round up onto `upper`
    thresholds = np.concatenate(([fd[0] - 1.0], mids, [fd[-1] + 1.0]))
    scores = np.concatenate(([n_diff], correct))
    best = int(np.argmax(scores))  # first maximum: the smallest threshold
    return float(thresholds[best]), float(scores[best]) / d.size


@dataclass(frozen=True)
class TenFoldResult:
    """Ten-fold (leave-one-fold-out) accuracy: mean and population std over folds; thresholds, accuracies per fold."""

    mean: float
    std: float
    thresholds: tuple[float, ...]
    fold_accuracies: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "thresholds": list(self.thresholds),
            "fold_accuracies": list(self.fold_accuracies),
        }


def ten_fold_evaluation(distances: npt.ArrayLike, same: npt.ArrayLike, folds: npt.ArrayLike) -> TenFoldResult:
    """For each fold (in ascending fold order), choose the threshold on the others and measure accuracy on it."""
    d, s, f = _as_arrays(distances, same, folds)
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise ValueError("cross-validation needs at least two folds")
    thresholds: list[float] = []
    accuracies: list[float] = []
    for k in fold_ids:
        test = f == k
        threshold, _ = choose_threshold(d[~test], s[~test])
        thresholds.append(threshold)
        accuracies.append(accuracy_at(d[test], s[test], threshold))
    acc = np.array(accuracies)
    return TenFoldResult(float(acc.mean()), float(acc.std()), tuple(thresholds), tuple(accuracies))


def ten_fold_accuracy(
    distances: npt.ArrayLike, same: npt.ArrayLike, folds: npt.ArrayLike
) -> tuple[float, float, list[float]]:
    """``(mean accuracy, std over folds, per-fold thresholds)``; see ``ten_fold_evaluation``."""
    result = ten_fold_evaluation(distances, same, folds)
    return result.mean, result.std, list(result.thresholds)


@dataclass(frozen=True)
class LfwReport:
    """One system's result on the LFW protocol, with the missing-face counts beside the accuracy."""

    ten_fold: TenFoldResult
    threshold: float
    accuracy_at_threshold: float
    images: int
    images_without_face: tuple[str, ...]
    pairs: int
    pairs_affected: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ten_fold": self.ten_fold.to_json(),
            "threshold": self.threshold,
            "accuracy_at_threshold": self.accuracy_at_threshold,
            "images": self.images,
            "images_without_face": len(self.images_without_face),
            "images_without_face_list": list(self.images_without_face),
            "pairs": self.pairs,
            "pairs_affected": self.pairs_affected,
        }


def evaluate(
    pairs: Sequence[LfwPair], templates: Mapping[str, npt.NDArray[Any] | None], threshold: float = 0.6
) -> LfwReport:
    """Run the protocol on one system's templates (None for an image where no face was found)."""
    distances = pair_distances(pairs, templates)
    same = np.array([p.same for p in pairs], dtype=np.bool_)
    folds = np.array([p.fold for p in pairs], dtype=np.int64)
    missing = tuple(path for path in unique_images(pairs) if templates[path] is None)
    return LfwReport(
        ten_fold=ten_fold_evaluation(distances, same, folds),
        threshold=threshold,
        accuracy_at_threshold=accuracy_at(distances, same, threshold),
        images=len(unique_images(pairs)),
        images_without_face=missing,
        pairs=len(pairs),
        pairs_affected=int(np.count_nonzero(~np.isfinite(distances))),
    )
