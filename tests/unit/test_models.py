"""The model manifest and loader refuse anything that is not the pinned build."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.errors import DeviceError, ModelError
from engine.faces.convert import build_mmod, build_resnet
from engine.faces.dlib_format import read_network, read_shape_predictor
from engine.faces.models import MODEL_FILES, Manifest, ModelLoader, models_dir, normalise_device


def _dlib_source() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.origin is not None, "face-recognition-models must be installed by setup"
    return Path(spec.origin).parent / "models"


@pytest.fixture()
def model_copy(tmp_path: Path) -> Path:
    """A private copy of the built models, safe to tamper with."""
    src = models_dir()
    for name in ["manifest.yaml", *[f for files in MODEL_FILES.values() for f in files]]:
        shutil.copy(src / name, tmp_path / name)
    return tmp_path


def test_built_models_match_the_manifest() -> None:
    manifest = Manifest.load(models_dir() / "manifest.yaml")
    manifest.verify_inputs(_dlib_source())
    manifest.verify_outputs(models_dir())


@pytest.mark.parametrize("victim", ["face_resnet.bin", "face_resnet.xml", "mmod_detector.bin", "shape_predictor_5.npz"])
def test_a_tampered_model_file_is_refused(model_copy: Path, victim: str) -> None:
    data = bytearray((model_copy / victim).read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (model_copy / victim).write_bytes(bytes(data))
    loader = ModelLoader("CPU", model_copy)
    model = next(m for m, files in MODEL_FILES.items() if victim in files)
    with pytest.raises(ModelError, match=f"{victim} does not match models/manifest.yaml"):
        loader.arrays(model) if victim.endswith(".npz") else loader.compile(model)


def test_a_missing_model_file_says_how_to_build_it(model_copy: Path) -> None:
    (model_copy / "mmod_detector.bin").unlink()
    with pytest.raises(ModelError, match="missing: run 'make models'"):
        ModelLoader("CPU", model_copy).compile("mmod_detector")


def test_a_malformed_manifest_is_refused(model_copy: Path) -> None:
    (model_copy / "manifest.yaml").write_text("format: 1\nsource: x\ninputs: 3\n")
    with pytest.raises(ModelError, match="malformed"):
        ModelLoader("CPU", model_copy)


def test_device_names_are_checked() -> None:
    assert normalise_device("cpu") == "CPU"
    assert normalise_device(None) in {"AUTO", "CPU", "GPU", "NPU"}
    with pytest.raises(DeviceError, match="unknown inference device 'TPU'"):
        normalise_device("TPU")


def test_an_absent_device_is_refused_with_the_available_ones() -> None:
    import openvino as ov

    missing = next(d for d in ("NPU", "GPU") if d not in ov.Core().available_devices)
    with pytest.raises(DeviceError, match=f"{missing} is not available on this terminal"):
        ModelLoader(missing)


def test_auto_runs_at_the_same_fp32_precision_as_cpu() -> None:
    chips = np.random.default_rng(7).integers(0, 256, size=(3, 150, 150, 3), dtype=np.uint8)
    cpu = ModelLoader("CPU").compile("face_resnet")(chips)[0]
    auto = ModelLoader("AUTO").compile("face_resnet")(chips)[0]
    assert np.max(np.abs(cpu - auto)) < 1e-5


def test_the_converter_refuses_the_wrong_network() -> None:
    src = _dlib_source()
    with pytest.raises(ModelError, match="expected a metric-learning network"):
        build_resnet(read_network(src / "mmod_human_face_detector.dat"))
    with pytest.raises(ModelError, match="expected an MMOD detector network"):
        build_mmod(read_network(src / "dlib_face_recognition_resnet_model_v1.dat"))


def test_a_truncated_dlib_file_is_refused(tmp_path: Path) -> None:
    data = (_dlib_source() / "mmod_human_face_detector.dat").read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="unexpected end of file"):
        read_network(tmp_path / "cut.dat")


def test_the_shape_predictor_parses_to_the_documented_shape() -> None:
    sp = read_shape_predictor(_dlib_source() / "shape_predictor_5_face_landmarks.dat")
    assert sp.leaves.shape == (15, 500, 16, 5, 2)
    assert sp.anchor_idx.shape == (15, 800) and int(sp.anchor_idx.max()) == 4
    assert float(np.abs(sp.deltas).max()) < 0.51  # "within about ±0.5" per the fact sheet
    np.testing.assert_allclose(sp.initial_shape[0], [0.77625, 0.34554], atol=1e-5)
