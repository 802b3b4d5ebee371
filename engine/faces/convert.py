"""Build OpenVINO graphs from parsed dlib networks (used by ``scripts/build_models.py``).

The topology is hard-coded from dlib's own definitions (``DLIB_MODELS.md`` sections 4 and 5)
because a dlib file does not describe its own wiring; the layer tags read from the file are
checked against that topology so a different file is refused rather than misread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import openvino as ov
import openvino.opset13 as ops

from engine.errors import ModelError
from engine.faces.dlib_format import DlibNetwork, Layer

RESNET_INPUT_SIZE = 150
DESCRIPTOR_SIZE = 128


@dataclass
class _Node:
    """An OpenVINO output with its static (C, H, W), so dlib's shape rules can be applied."""

    out: ov.Output
    chw: tuple[int, int, int]


class _Layers:
    """Consumes the file's layer records in forward order, checking each tag."""

    def __init__(self, layers: list[Layer]) -> None:
        self._it: Iterator[Layer] = iter(layers)
        self.count = 0

    def take(self, tag: str) -> Layer:
        layer = next(self._it, None)
        if layer is None or layer.tag != tag:
            found = "end of network" if layer is None else repr(layer.tag)
            raise ModelError(f"layer {self.count}: expected {tag!r}, found {found}; not the expected dlib network")
        self.count += 1
        return layer

    def finished(self) -> bool:
        return next(self._it, None) is None


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return 1 + (n + 2 * p - k) // s


def _conv(x: _Node, conv: Layer, scale: np.ndarray | None = None, shift: np.ndarray | None = None) -> _Node:
    """Convolution with bias, optionally folding a following per-channel affine (y = scale*x + shift)."""
    w = conv.fields["weights"].astype(np.float64)
    b = conv.fields["bias"].astype(np.float64)
    if scale is not None and shift is not None:
        w = w * scale[:, None, None, None]
        b = b * scale + shift
    (kh, kw), (sy, sx), (py, px) = conv.fields["kernel"], conv.fields["stride"], conv.fields["pad"]
    node = ops.convolution(
        x.out, ops.constant(w.astype(np.float32)), [sy, sx], [py, px], [py, px], [1, 1], auto_pad="explicit"
    )
    node = ops.add(node, ops.constant(b.astype(np.float32).reshape(1, -1, 1, 1)))
    _, h, ww = x.chw
    return _Node(node.output(0), (w.shape[0], _out_size(h, kh, sy, py), _out_size(ww, kw, sx, px)))


def _conv_affine(x: _Node, layers: _Layers) -> _Node:
    conv = layers.take("con_4")
    aff = layers.take("affine_")
    return _conv(x, conv, aff.fields["gamma"].astype(np.float64), aff.fields["beta"].astype(np.float64))


def _relu(x: _Node, layers: _Layers) -> _Node:
    layers.take("relu_")
    return _Node(ops.relu(x.out).output(0), x.chw)


def _pool(x: _Node, layer: Layer, kind: str) -> _Node:
    (kh, kw), (sy, sx), (py, px) = layer.fields["kernel"], layer.fields["stride"], layer.fields["pad"]
    c, h, w = x.chw
    if kh == 0 and kw == 0:  # dlib: a 0x0 window means the whole input
        kh, kw = h, w
    if kind == "max":
        node = ops.max_pool(x.out, [sy, sx], [1, 1], [py, px], [py, px], [kh, kw], rounding_type="floor").output(0)
    else:
        # dlib averages in-bounds elements only; every pool here has zero padding anyway.
        node = ops.avg_pool(x.out, [sy, sx], [py, px], [py, px], [kh, kw], exclude_pad=True).output(0)
    return _Node(node, (c, _out_size(h, kh, sy, py), _out_size(w, kw, sx, px)))


def _pad_to(x: _Node, chw: tuple[int, int, int]) -> _Node:
    """Zero-extend at the high end (channels, bottom rows, right columns), as dlib's add_prev does."""
    extra = [t - s for t, s in zip(chw, x.chw, strict=True)]
    if not any(extra):
        return x
    node = ops.pad(x.out, [0, 0, 0, 0], [0, *extra], "constant", 0.0).output(0)
    return _Node(node, chw)


def _add_prev(a: _Node, b: _Node) -> _Node:
    chw = (max(a.chw[0], b.chw[0]), max(a.chw[1], b.chw[1]), max(a.chw[2], b.chw[2]))
    return _Node(ops.add(_pad_to(a, chw).out, _pad_to(b, chw).out).output(0), chw)


def _ares(x: _Node, layers: _Layers, down: bool) -> _Node:
    y = _relu(_conv_affine(x, layers), layers)
    y = _conv_affine(y, layers)
    shortcut = _pool(x, layers.take("avg_pool_2"), "avg") if down else x
    layers.take("add_prev_")
    return _relu(_add_prev(y, shortcut), layers)


def _check_input(net: DlibNetwork, tag: str) -> tuple[float, float, float]:
    if net.input_tag != tag:
        raise ModelError(f"expected input layer {tag!r}, found {net.input_tag!r}; not the expected dlib network")
    avg = net.input["avg"]
    return (float(avg[0]), float(avg[1]), float(avg[2]))


def _normalise_uint8_nhwc(param: ov.Node, avg: tuple[float, float, float]) -> ov.Output:
    """uint8 RGB NHWC -> (pixel - avg) / 256 as float32 NCHW, exactly as dlib's input layers do."""
    x = ops.convert(param, "f32")
    x = ops.subtract(x, ops.constant(np.array(avg, dtype=np.float32).reshape(1, 1, 1, 3)))
    x = ops.multiply(x, ops.constant(np.float32(1.0 / 256.0)))  # a power of two: exact
    return ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], dtype=np.int64))).output(0)


def build_resnet(net: DlibNetwork) -> ov.Model:
    """The face descriptor network: input uint8 chips [N,150,150,3] RGB, output [N,128] float32."""
    if net.loss_tag != "loss_metric_2":
        raise ModelError(f"expected a metric-learning network, found loss {net.loss_tag!r}")
    avg = _check_input(net, "input_rgb_image_sized")
    size = RESNET_INPUT_SIZE
    if (net.input["rows"], net.input["cols"]) != (size, size):
        raise ModelError("the descriptor network does not take 150x150 chips")
    param = ops.parameter([-1, size, size, 3], ov.Type.u8, name="chips")
    layers = _Layers(net.layers)
    x = _Node(_normalise_uint8_nhwc(param, avg), (3, size, size))
    x = _relu(_conv_affine(x, layers), layers)
    x = _pool(x, layers.take("max_pool_2"), "max")
    # (units, down-sampling first?) per level, from the input side: alevel4 .. alevel0.
    for units, first_down in ((3, False), (4, True), (3, True), (3, True), (1, True)):
        for i in range(units):
            x = _ares(x, layers, down=first_down and i == 0)
    x = _pool(x, layers.take("avg_pool_2"), "avg")
    fc = layers.take("fc_2")
    if fc.fields["bias"] is not None or fc.fields["weights"].shape != (x.chw[0], DESCRIPTOR_SIZE):
        raise ModelError("unexpected descriptor layer shape")
    flat = ops.reshape(x.out, ops.constant(np.array([-1, x.chw[0]], dtype=np.int64)), special_zero=False)
    out = ops.matmul(flat, ops.constant(fc.fields["weights"].astype(np.float32)), False, False)
    if not layers.finished():
        raise ModelError("the descriptor network has more layers than expected")
    out.output(0).get_tensor().set_names({"descriptors"})
    return ov.Model([out.output(0)], [param], "dlib_face_recognition_resnet_model_v1")


def build_mmod(net: DlibNetwork) -> ov.Model:
    """The MMOD detector network: input [1,3,H,W] normalised pyramid tensor, output [1,1,H',W'] scores."""
    if net.loss_tag != "loss_mmod_":
        raise ModelError(f"expected an MMOD detector network, found loss {net.loss_tag!r}")
    _check_input(net, "input_rgb_image_pyramid")
    param = ops.parameter([1, 3, -1, -1], ov.Type.f32, name="pyramid")
    layers = _Layers(net.layers)
    x = _Node(param.output(0), (3, 0, 0))  # spatial size is dynamic; only channels matter here
    for _ in range(6):
        conv = layers.take("con_4")
        bn = layers.take("bn_con2").fields
        # dlib turns bn into affine on load: g' = g / sqrt(var + eps), b' = b - g' * mean.
        scale = bn["gamma"].astype(np.float64) / np.sqrt(bn["var"].astype(np.float64) + bn["eps"])
        shift = bn["beta"].astype(np.float64) - scale * bn["mean"].astype(np.float64)
        x = _relu(_conv(x, conv, scale, shift), layers)
    x = _conv(x, layers.take("con_4"))
    if not layers.finished():
        raise ModelError("the detector network has more layers than expected")
    x.out.get_tensor().set_names({"scores"})
    return ov.Model([x.out], [param], "mmod_human_face_detector")
