"""Accuracy evaluation of the face engine on public benchmarks (numpy only, no dlib)."""

from engine.evaluation.lfw import (
    MISSING_FACE_DISTANCE,
    LfwPair,
    LfwReport,
    PairsFileError,
    TenFoldResult,
    accuracy_at,
    choose_threshold,
    evaluate,
    image_path,
    load_pairs,
    nearest_to_centre,
    pair_distances,
    parse_pairs,
    ten_fold_accuracy,
    ten_fold_evaluation,
    unique_images,
)

__all__ = [
    "MISSING_FACE_DISTANCE",
    "LfwPair",
    "LfwReport",
    "PairsFileError",
    "TenFoldResult",
    "accuracy_at",
    "choose_threshold",
    "evaluate",
    "image_path",
    "load_pairs",
    "nearest_to_centre",
    "pair_distances",
    "parse_pairs",
    "ten_fold_accuracy",
    "ten_fold_evaluation",
    "unique_images",
]
