#!/usr/bin/env python3
"""Build the face models into ``models/`` from dlib's CC0 files, and pin them in the manifest.

    python scripts/build_models.py            # build what is missing, verify everything
    python scripts/build_models.py --rebuild  # rebuild all outputs, verify against the manifest
    python scripts/build_models.py --write-manifest   # developers only: after changing the converter

Inputs come from the PyPI package ``face-recognition-models`` (installed by setup); nothing is
downloaded. dlib is not needed: ``engine.faces.dlib_format`` reads its serialization directly.
The build is deterministic, so a fresh build must reproduce the sha256 pinned in
``models/manifest.yaml``; a mismatch stops setup (a changed model is a false-match risk).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import tempfile
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.errors import ModelError  # noqa: E402
from engine.faces import models as model_registry  # noqa: E402
from engine.faces.dlib_format import read_network, read_shape_predictor  # noqa: E402

SOURCE_PACKAGE = "face_recognition_models"
SOURCE_DISTRIBUTION = "face-recognition-models==0.3.0"


def source_dir() -> Path:
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError(f"the package {SOURCE_DISTRIBUTION} is not installed: run 'make setup' first")
    return Path(spec.origin).parent / "models"


def _deterministic_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz whose bytes depend only on the arrays (numpy's own savez stamps the time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.save(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def _save_ir(model: object, xml_path: Path) -> None:
    import openvino as ov

    ov.save_model(model, str(xml_path), compress_to_fp16=False)


def build_all(src: Path, out: Path) -> None:
    """Write every output file of the manifest into ``out``."""
    from engine.faces.convert import build_mmod, build_resnet

    _save_ir(build_resnet(read_network(src / "dlib_face_recognition_resnet_model_v1.dat")), out / "face_resnet.xml")
    _save_ir(build_mmod(read_network(src / "mmod_human_face_detector.dat")), out / "mmod_detector.xml")
    sp = read_shape_predictor(src / "shape_predictor_5_face_landmarks.dat")
    arrays = {f.name: getattr(sp, f.name) for f in fields(sp)}
    (out / "shape_predictor_5.npz").write_bytes(_deterministic_npz(arrays))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="rebuild all outputs even if present")
    parser.add_argument("--write-manifest", action="store_true", help="record the fresh build's hashes")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    args = parser.parse_args(argv)
    try:
        src = source_dir()
        manifest_path = args.models_dir / "manifest.yaml"
        manifest = None if args.write_manifest else model_registry.Manifest.load(manifest_path)
        outputs_present = manifest is not None and all((args.models_dir / name).is_file() for name in manifest.outputs)
        if args.rebuild or args.write_manifest or not outputs_present:
            with tempfile.TemporaryDirectory(dir=args.models_dir) as tmp:
                tmp_dir = Path(tmp)
                build_all(src, tmp_dir)
                if args.write_manifest:
                    model_registry.Manifest.record(manifest_path, src, tmp_dir, SOURCE_DISTRIBUTION)
                    manifest = model_registry.Manifest.load(manifest_path)
                assert manifest is not None
                manifest.verify_inputs(src)
                manifest.verify_outputs(tmp_dir)  # refuse a build that does not reproduce the pins
                for name in manifest.outputs:
                    (tmp_dir / name).replace(args.models_dir / name)
            print(f"built {len(manifest.outputs)} model files into {args.models_dir}")
        assert manifest is not None
        manifest.verify_outputs(args.models_dir)
        manifest.verify_pinned(args.models_dir)
        count = len(manifest.outputs) + len(manifest.pinned)
        print(f"verified {count} model files against {manifest_path.name}")
        return 0
    except ModelError as exc:
        print(f"build_models: {exc.diagnostics()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
