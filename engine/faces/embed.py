"""Face templates: 150x150 aligned chips -> 128-d descriptors with the converted dlib ResNet."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from engine.faces.convert import DESCRIPTOR_SIZE, RESNET_INPUT_SIZE

DEFAULT_BATCH = 32


class FaceEmbedder:
    """Runs the descriptor network in batches. Thread-safe: one infer request behind a lock."""

    def __init__(self, compiled: Any, batch_size: int = DEFAULT_BATCH) -> None:
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        self.batch_size = batch_size

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """``chips`` (N,150,150,3) uint8 RGB -> (N,128) float32 descriptors (not normalised, as dlib's)."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        size = RESNET_INPUT_SIZE
        if chips.shape[1:] != (size, size, 3) or chips.dtype != np.uint8:
            raise ValueError(f"chips must be (N,{size},{size},3) uint8, got {chips.shape} {chips.dtype}")
        out = np.empty((len(chips), DESCRIPTOR_SIZE), dtype=np.float32)
        with self._lock:
            for start in range(0, len(chips), self.batch_size):
                batch = np.ascontiguousarray(chips[start : start + self.batch_size])
                result = self._request.infer({0: batch})
                out[start : start + len(batch)] = next(iter(result.values()))
        return out


def l2_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between descriptors (dlib's measure; same person below ~0.6)."""
    return np.asarray(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    num = np.sum(a * b, axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.asarray(num / np.maximum(den, np.finfo(np.float32).tiny))
