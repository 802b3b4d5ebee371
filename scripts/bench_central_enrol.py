"""Central enrolment on Dask: images per second on LFW with 1 and 2 local workers (and threads per worker).

    .venv/bin/python scripts/bench_central_enrol.py [--images 600] [--configs 1x1,1x2,2x1,2x1u] [--rounds 3]

Each configuration (WORKERSxTHREADS) enrols the same LFW images from scratch into a new output folder
with ``engine.central.enrol.enrol`` on a LocalCluster of worker processes, exactly as
``rfr central enrol`` does. Printed per configuration: the whole run (cluster start, face engine
loaded in each worker, sealing key derived, every image, outputs sealed and written) and the
steady rate (from the first finished batch to the last: what a long run sees). `2x1u`: two workers left on
every core (unpinned), to compare with `2x1` (each kept to its own core). A baseline runs the
same enrolment rules in this process, one image after another, without Dask; and the client alone
(outcomes decoded, sealed and written, no face engine) gives the ceiling one client sets on a large
cluster. Figures go to docs/benchmarks.md ("Central enrolment on Dask").
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.central.enrol import CentralProgress, enrol  # noqa: E402
from engine.library.enrol import Skipped, read_reference_image, reference_template  # noqa: E402

PASSPHRASE = "benchmark passphrase, not a secret"


def lfw_images(data: Path, count: int) -> list[tuple[str, Path]]:
    """The first ``count`` LFW images in name order (people with several images keep them together)."""
    found: list[tuple[str, Path]] = []
    for person in sorted((data / "lfw" / "images").iterdir()):
        for image in sorted(person.iterdir()):
            found.append((person.name, image))
            if len(found) == count:
                return found
    return found


def write_manifest(path: Path, images: list[tuple[str, Path]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "image", "source"])
        for person, image in images:
            writer.writerow([person, str(image), "LFW benchmark"])


def baseline(images: list[tuple[str, Path]]) -> float:
    """Images per second of the same rules in this process, one at a time (no Dask), after a warm-up image."""
    from engine.faces.pipeline import FaceEngine

    engine = FaceEngine.open("CPU")
    first = read_reference_image(images[0][1])
    assert not isinstance(first, Skipped)
    reference_template(first[0], str(images[0][1]), engine)
    started = time.perf_counter()
    for _, path in images:
        read = read_reference_image(path)
        if not isinstance(read, Skipped):
            reference_template(read[0], str(path), engine)
    return len(images) / (time.perf_counter() - started)


def client_ceiling(batch_size: int, batches: int = 300) -> float:
    """Images per second the client alone can take in: each batch's outcomes decoded, sealed, written and fsynced
    (with a checkpoint every 20 batches), as ``enrol`` does for every result. No face engine: the client's limit."""
    import numpy as np

    from engine.central.outputs import EnrolmentManifest, EnrolmentOutput, Outcome

    work = Path(tempfile.mkdtemp(prefix="bench-central-client-"))
    try:
        rows = "".join(f"S{i},/nowhere/{i}.jpg\n" for i in range(batch_size * batches))
        manifest = EnrolmentManifest.parse("m.csv", work, "subject,image\n" + rows)
        output = EnrolmentOutput.create(
            work / "out", manifest, PASSPHRASE, model_id="m", model_sha256="0" * 64, batch_size=batch_size, upsample=0
        )
        template = np.random.default_rng(0).random(128).astype("<f4").tobytes()
        started = time.perf_counter()
        for batch in range(batches):
            sent = [
                Outcome(r, "enrolled", "ab" * 32, "image/jpeg", 250, 250, (1, 2, 3, 4), template).to_json()
                for r in output.header.batch_rows(batch)
            ]
            output.write_part(batch, [Outcome.from_json(o) for o in sent])
            if batch % 20 == 0:
                output.write_checkpoint()
        return batch_size * batches / (time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(manifest: Path, workers: int, threads: int, batch_size: int, share_cores: bool) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix="bench-central-")) / "out"
    stamps: list[tuple[float, int]] = []

    def progress(p: CentralProgress) -> None:
        stamps.append((time.perf_counter(), p.done))

    started = time.perf_counter()
    try:
        summary = enrol(
            manifest,
            out,
            PASSPHRASE,
            workers=workers,
            threads_per_worker=threads,
            batch_size=batch_size,
            progress=progress,
            share_cores=share_cores,
        )
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    total = time.perf_counter() - started
    (t0, d0), (t1, d1) = stamps[0], stamps[-1]
    steady = (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")
    return {
        "images": summary.rows,
        "enrolled": summary.enrolled,
        "seconds": total,
        "overall": summary.rows / total,
        "steady": steady,
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import dask
    import openvino

    return (
        f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
        f"dask/distributed {dask.__version__}, OpenVINO {openvino.get_version().split('-')[0]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument(
        "--configs",
        default="1x1,1x2,2x1,2x1u",
        help="WORKERSxTHREADS, comma-separated; a trailing u leaves the workers unpinned (every core each)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="each configuration this many times, interleaved")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RFR_DATA", REPO.parent / "shared" / "data")))
    args = parser.parse_args()
    images = lfw_images(args.data, args.images)
    work = Path(tempfile.mkdtemp(prefix="bench-central-manifest-"))
    try:
        manifest = work / "manifest.csv"
        write_manifest(manifest, images)
        print(f"machine: {machine()}")
        print(f"images: {len(images)} LFW images (250x250 JPEG), batch size {args.batch_size}")
        print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        configs = args.configs.split(",")
        results: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
        baselines = []
        for round_ in range(1, args.rounds + 1):  # configurations interleaved: a busy spell hits each alike
            baselines.append(baseline(images))
            print(f"round {round_}: baseline (this process, no Dask, one image at a time) {baselines[-1]:.1f} images/s")
            for config in configs:
                workers, threads = (int(v) for v in config.removesuffix("u").lower().split("x"))
                figures = run(manifest, workers, threads, args.batch_size, not config.endswith("u"))
                results[config].append(figures)
                print(
                    f"round {round_}: {config}: {figures['enrolled']:.0f} enrolled in "
                    f"{figures['seconds']:.1f} s, {figures['overall']:.1f} images/s overall, "
                    f"{figures['steady']:.1f} steady"
                )
        print(
            f"client alone (decode, seal, write, fsync each batch of {args.batch_size}): "
            f"{client_ceiling(args.batch_size):,.0f} images/s"
        )
        print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(f"best of {args.rounds} (the least disturbed run), images per second:")
        print(f"  baseline, no Dask: {max(baselines):.1f}")
        print(f"{'workers x threads':>18} {'wall s':>8} {'overall':>9} {'steady':>8} {'steady vs first':>16}")
        one = max(r["steady"] for r in results[configs[0]])
        for config in configs:
            best = max(results[config], key=lambda r: r["steady"])
            print(
                f"{config:>18} {min(r['seconds'] for r in results[config]):>8.1f} "
                f"{max(r['overall'] for r in results[config]):>9.1f} {best['steady']:>8.1f} "
                f"{best['steady'] / one:>15.2f}x"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
