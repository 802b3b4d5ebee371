"""Fitting the score calibration from evaluation distances (offline; the run time never imports this).

``build_calibration`` tabulates genuine and impostor distances measured on a benchmark into the
``Calibration`` that the terminal loads, checks and states beside every score. Reading, verifying
and applying a calibration is run time and lives in ``engine.scoring.calibration``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from engine.errors import CalibrationError
from engine.evaluation.metrics import Scores
from engine.scoring.calibration import GRID_DECIMALS, GRID_STEP, Calibration


def build_calibration(
    genuine: Scores | npt.ArrayLike,
    impostor: Scores | npt.ArrayLike,
    *,
    id: str,
    version: int,
    model_id: str,
    model_sha256: str,
    dataset: str,
    created: str,
    created_by: str,
    subjects: int,
    images: int,
    images_without_face: int,
) -> Calibration:
    """Tabulate genuine and impostor distances on the grid, from 0 to the first distance every impostor reached."""
    g = genuine if isinstance(genuine, Scores) else Scores(genuine, what="genuine scores")
    i = impostor if isinstance(impostor, Scores) else Scores(impostor, what="impostor scores")
    if i.n == 0 or not math.isfinite(float(i.values[-1])):
        raise CalibrationError("calibration needs impostor distances, all finite (leave out images without a face)")
    last = math.ceil(float(i.values[-1]) / GRID_STEP) + 1
    grid = np.round(np.arange(0, last + 1) * GRID_STEP, GRID_DECIMALS)
    imp = i.at_or_below(grid)
    stop = max(2, int(np.searchsorted(imp, i.n, side="left")) + 1)
    grid, imp = grid[:stop], imp[:stop]
    gen = g.at_or_below(grid)
    return Calibration(
        id=id,
        version=version,
        model_id=model_id,
        model_sha256=model_sha256,
        dataset=dataset,
        created=created,
        created_by=created_by,
        subjects=subjects,
        images=images,
        images_without_face=images_without_face,
        genuine_pairs=g.n,
        impostor_pairs=i.n,
        distances=tuple(float(x) for x in grid),
        impostor_at_or_below=tuple(int(x) for x in imp),
        genuine_at_or_below=tuple(int(x) for x in gen),
    )
