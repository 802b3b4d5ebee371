"""Identification (1:N) built as NIST FRTE builds it: a gallery, mated probes, and non-mated probes never enrolled.

From the people of one half of the protocol (``engine.evaluation.protocol``), each with their balanced
images (at most ``MAX_IMAGES_PER_PERSON``, first by image number):

- a fixed share of the people is **never enrolled** (chosen by a hash of the name, so the choice does
  not depend on who else is in the set); every balanced image of theirs is a **non-mated probe**;
- every other person is **enrolled** with their first balanced image (one reference each, as a custody
  library holds one photograph per occasion); their other balanced images are **mated probes**.

A non-mated search cannot find its subject because the subject is not in the gallery at all, which is
what FPIR means (NIST IR 8271: non-mated searches are of people absent from the gallery). Removing a
probe's own enrolment from the gallery instead (the construction used before) still searches a gallery
built around the probe's people and is not what NIST does.

FPIR(t): non-mated searches whose best candidate is at or below t. FNIR(t): mated searches whose mate
is not on the candidate list (rank at most ``max_rank``) at or below t. Both are per-person error
counts, so ``engine.evaluation.equity.person_sweep`` gives them by group with a subject bootstrap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.evaluation.equity import EquityError, errors_by_person
from engine.evaluation.metrics import NO_RANK, cmc, mate_ranks, threshold_at_fmr
from engine.evaluation.protocol import HalfImages

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_RANK = 50
"""Candidate list length: a mate found lower than this is a miss."""
HOLD_OUT_SHARE = 0.5
"""Share of the people never enrolled (their images are the non-mated probes)."""


def never_enrolled(name: str, share: float = HOLD_OUT_SHARE) -> bool:
    """Whether a person is held out of the gallery: the first 8 bytes of sha256(name) as a share of 2**64."""
    if not 0.0 < share < 1.0:
        raise EquityError(f"hold-out share must be between 0 and 1, got {share}")
    value = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    return value < share * 2**64


@dataclass(frozen=True)
class Construction:
    """Who is enrolled, and which images are the gallery, the mated probes and the non-mated probes.

    Rows index the half's template rows (``HalfImages.rows``); persons index ``HalfImages.people``.
    """

    people: tuple[str, ...]
    enrolled: BoolArray
    gallery_rows: IntArray
    gallery_person: IntArray
    mated_rows: IntArray
    mated_person: IntArray
    nonmated_rows: IntArray
    nonmated_person: IntArray

    @classmethod
    def from_half(cls, half: HalfImages, share: float = HOLD_OUT_SHARE) -> Construction:
        held_out = np.array([never_enrolled(p, share) for p in half.people], dtype=bool)
        rows, owner = half.rows[half.balanced], half.owner[half.balanced]
        first = np.r_[True, owner[1:] != owner[:-1]] if owner.size else np.zeros(0, dtype=bool)
        enrolled_row = ~held_out[owner]
        gallery = enrolled_row & first
        mated = enrolled_row & ~first
        nonmated = ~enrolled_row
        return cls(
            people=half.people,
            enrolled=~held_out,
            gallery_rows=rows[gallery],
            gallery_person=owner[gallery],
            mated_rows=rows[mated],
            mated_person=owner[mated],
            nonmated_rows=rows[nonmated],
            nonmated_person=owner[nonmated],
        )

    def to_json(self) -> dict[str, Any]:
        mated_people = np.unique(self.mated_person).size
        return {
            "people": len(self.people),
            "enrolled_people": int(self.enrolled.sum()),
            "never_enrolled_people": int((~self.enrolled).sum()),
            "gallery": int(self.gallery_rows.size),
            "enrolled_without_mated_probe": int(self.gallery_rows.size - mated_people),
            "mated_searches": int(self.mated_rows.size),
            "mated_people": int(mated_people),
            "non_mated_searches": int(self.nonmated_rows.size),
            "non_mated_people": int(np.unique(self.nonmated_person).size),
        }


@dataclass(frozen=True)
class Searches:
    """The result of every search of a construction: mate distance and rank, best non-mated candidate."""

    construction: Construction
    mate_distance: FloatArray
    mate_rank: IntArray
    nonmated_top: FloatArray
    max_rank: int = MAX_RANK

    @classmethod
    def run(
        cls,
        vectors: npt.NDArray[np.floating],
        construction: Construction,
        *,
        max_rank: int = MAX_RANK,
        chunk: int = 512,
    ) -> Searches:
        """Search every probe against the whole gallery (exact euclidean distances, in memory)."""
        c = construction
        if c.gallery_rows.size == 0:
            raise EquityError("the gallery is empty: no person was enrolled")
        gallery = np.asarray(vectors[c.gallery_rows], dtype=np.float64)
        column = np.full(len(c.people), -1, dtype=np.int64)
        column[c.gallery_person] = np.arange(c.gallery_rows.size)
        mate_col = column[c.mated_person]
        if np.any(mate_col < 0):
            raise EquityError("a mated probe's person has no gallery entry")
        gsq = np.einsum("ij,ij->i", gallery, gallery)

        def distances(rows: IntArray) -> FloatArray:
            x = np.asarray(vectors[rows], dtype=np.float64)
            d2 = np.einsum("ij,ij->i", x, x)[:, None] + gsq[None, :] - 2.0 * (x @ gallery.T)
            out: FloatArray = np.sqrt(np.maximum(d2, 0.0))
            return out

        mate_d = np.empty(c.mated_rows.size)
        ranks = np.empty(c.mated_rows.size, dtype=np.int64)
        for s in range(0, c.mated_rows.size, chunk):
            d = distances(c.mated_rows[s : s + chunk])
            cols = mate_col[s : s + chunk]
            mate_d[s : s + d.shape[0]] = d[np.arange(d.shape[0]), cols]
            ranks[s : s + d.shape[0]] = mate_ranks(d, cols)
        top = np.empty(c.nonmated_rows.size)
        for s in range(0, c.nonmated_rows.size, chunk):
            top[s : s + chunk] = distances(c.nonmated_rows[s : s + chunk]).min(axis=1)
        return cls(c, mate_d, ranks, top, max_rank)

    @property
    def effective_mate_distance(self) -> FloatArray:
        """The mate's distance when it is on the candidate list, else +inf (never found at any threshold)."""
        out: FloatArray = np.where(self.mate_rank <= self.max_rank, self.mate_distance, np.inf)
        return out

    def fpir_errors(self, thresholds: FloatArray) -> tuple[IntArray, IntArray]:
        """(people, thresholds) false positives and (people,) non-mated searches, per person."""
        c = self.construction
        n = len(c.people)
        errors = errors_by_person(c.nonmated_person, self.nonmated_top, thresholds, n, error_above=False)
        return errors, np.bincount(c.nonmated_person, minlength=n).astype(np.int64)

    def fnir_errors(self, thresholds: FloatArray) -> tuple[IntArray, IntArray]:
        """(people, thresholds) misses and (people,) mated searches, per person."""
        c = self.construction
        n = len(c.people)
        errors = errors_by_person(c.mated_person, self.effective_mate_distance, thresholds, n, error_above=True)
        return errors, np.bincount(c.mated_person, minlength=n).astype(np.int64)

    def threshold_at_fpir(self, target: float) -> float:
        """The largest threshold whose FPIR on these non-mated searches is at most ``target``."""
        return threshold_at_fmr(self.nonmated_top, target)

    def cmc(self, max_rank: int | None = None) -> FloatArray:
        return cmc(self.mate_rank, max_rank or self.max_rank)

    def rank_one_misses(self) -> int:
        return int(np.count_nonzero((self.mate_rank > 1) | (self.mate_rank == NO_RANK)))
