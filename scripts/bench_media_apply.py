"""Applying removable media with large targets: wall time, MB/s and peak memory beside the size of what is applied.

    .venv/bin/python scripts/bench_media_apply.py [--gigabytes 2 10] [--shape library|models] [--image-kb 256]

For each size the medium is built and signed by the central unit's own code (``engine.central``:
keys at a cheap passphrase cost, ``build_library`` or ``build_models``, ``Repository.sign``), then a
terminal of force-a trusts its root and a **fresh process** opens the terminal and runs what
``rfr media apply --yes`` runs (``Media.read``, ``Media.apply``: TUF verification, the plan, the free
space check, the one streaming pass per target into encrypted staging, the one transaction, the
index brought up to date). That process reports its peak resident memory counted from just after the
terminal opened (``/proc/self/clear_refs``; ``VmHWM``), so the figure is the apply's alone, and the
phases' times from the apply's own progress reports.

Shapes (generated content, never face images):

- ``library``: a library snapshot, the realistic large medium: one library package adding every
  image of a whole library (``--image-kb`` each, JPEGs of noise made unique, two per subject) with
  their templates (random unit vectors), as a force's first load arrives. Its targets are many
  (one per image, plus the template array), each small: memory must not grow with the total.
- ``models``: one target as large as the format allows (a model file: at most 2 GiB), in a models
  package: memory must not grow with the size of a single target.

The medium is read from this machine's disk (freshly written, so largely from the page cache: the
read side is faster than a USB stick would be). Figures go to docs/benchmarks.md ("Removable media:
large targets").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PASSPHRASE = "benchmark passphrase, not a secret"
ROOT_PASSPHRASE = "benchmark root passphrase, not a secret"
ENGINEER_PASSWORD = "a benchmark password, long enough"
FORCE, GROUP = "force-a", "custody-suites"
MAX_SINGLE_TARGET = 2 << 30  # engine.media.reader.MAX_MODEL_FILE_BYTES: the largest target the format admits
_FILL = 16 << 20


def _kdf() -> Any:
    from engine.central.sealed import Kdf

    return Kdf(n=2**14)  # the keys' passphrase cost is not what is measured


def _scrypt() -> Any:
    from engine.security.users import ScryptParams

    return ScryptParams(n=2**12)


def _config(work: Path) -> Any:
    from engine.terminal import TerminalConfig

    return TerminalConfig(
        workspace=work / "ws",
        audit_key_file=work / "ws.audit-key",
        key_file=work / "ws.key",
        name="BENCH-TERMINAL",
        force=FORCE,
        groups=(GROUP,),
        media_key_file=work / "ws.media-key",
    )


# ---- the medium -----------------------------------------------------------------------------------


def build_library_medium(work: Path, size: int, image_bytes: int) -> dict[str, Any]:
    from engine.central.keys import KeyRing, init_keys
    from engine.central.packages import LibraryTarget, Target, build_library
    from engine.central.repository import Repository
    from engine.faces.pipeline import model_identity
    from tests.central.synthetic import generated_enrolment

    init_keys(work / "keys", PASSPHRASE, [ROOT_PASSPHRASE], kdf=_kdf())
    images = max(1, size // image_bytes)
    started = time.monotonic()
    total = generated_enrolment(
        work / "source",
        work / "enrolment",
        PASSPHRASE,
        images=images,
        bytes_each=image_bytes,
        model=model_identity(),
        kdf=_kdf(),
        batch_size=4096,
        progress=lambda n: print(f"  generated {n:,} of {images:,} images", file=sys.stderr, flush=True),
    )
    generated = time.monotonic() - started
    repo = Repository.create_or_open(work / "repo")
    keys = KeyRing(work / "keys", lambda: PASSPHRASE, lambda _n, _p: ROOT_PASSPHRASE)
    started = time.monotonic()
    built = build_library(
        repo,
        Target(FORCE, (GROUP,), "benchmark: a whole library"),
        LibraryTarget("custody"),
        media_key=keys.media_key(),
        enrolment=work / "enrolment",
        passphrase=lambda: PASSPHRASE,
    )
    shutil.rmtree(work / "source")  # the images are in the repository's targets now
    repo.sign(keys)
    return {
        "targets": built.blobs + 1,
        "images": images,
        "image_bytes": total,
        "largest_target": max(image_bytes, images * 512),
        "generate_s": generated,
        "central_build_and_sign_s": time.monotonic() - started,
    }


def build_models_medium(work: Path, size: int) -> dict[str, Any]:
    import hashlib

    import yaml

    from engine.central.keys import KeyRing, init_keys
    from engine.central.packages import Target, build_models
    from engine.central.repository import Repository

    if size > MAX_SINGLE_TARGET:
        raise SystemExit(
            f"--shape models carries one target of at most {MAX_SINGLE_TARGET:,} bytes (the format's limit for a "
            "model file): use --shape library for larger media"
        )
    init_keys(work / "keys", PASSPHRASE, [ROOT_PASSPHRASE], kdf=_kdf())
    folder = work / "models"
    folder.mkdir()
    block = bytearray(os.urandom(_FILL))
    digest = hashlib.sha256()
    started = time.monotonic()
    with (folder / "face_resnet.bin").open("wb") as handle:
        written = 0
        while written < size:
            block[:8] = written.to_bytes(8, "big")  # each block differs a little: no run of identical chunks
            piece = memoryview(block)[: min(_FILL, size - written)]
            handle.write(piece)
            digest.update(piece)
            written += len(piece)
    small = b"<net version='11'/>"
    pins = {
        "format": 1,
        "source": "benchmark: generated content",
        "inputs": {},
        "outputs": {
            "face_resnet.xml": {"sha256": hashlib.sha256(small).hexdigest(), "bytes": len(small)},
            "face_resnet.bin": {"sha256": digest.hexdigest(), "bytes": size},
        },
        "pinned": {},
    }
    (folder / "face_resnet.xml").write_bytes(small)
    (folder / "manifest.yaml").write_text(yaml.safe_dump(pins))
    generated = time.monotonic() - started
    repo = Repository.create_or_open(work / "repo")
    keys = KeyRing(work / "keys", lambda: PASSPHRASE, lambda _n, _p: ROOT_PASSPHRASE)
    started = time.monotonic()
    built = build_models(
        repo, Target(FORCE, (GROUP,), "benchmark: one large target"), folder, media_key=keys.media_key()
    )
    shutil.rmtree(folder)
    repo.sign(keys)
    return {
        "targets": built.blobs + 1,
        "images": 0,
        "largest_target": size,
        "generate_s": generated,
        "central_build_and_sign_s": time.monotonic() - started,
    }


def make_terminal(work: Path) -> None:
    """A terminal of force-a with one engineer, trusting the central unit's root (closed again)."""
    from engine.central.keys import export_media_key
    from engine.security.keys import WorkspaceKey
    from engine.terminal import Terminal, face_provider

    config = _config(work)
    key = WorkspaceKey.generate()
    key.write_key_file(config.key_file)
    export_media_key(work / "keys", PASSPHRASE, config.media_key_file)  # as an engineer installs it
    with Terminal.create(config, key, faces=face_provider(config), scrypt=_scrypt()) as terminal:
        terminal.accounts.bootstrap_engineer("benchmarker", ENGINEER_PASSWORD)
        session = terminal.accounts.login("benchmarker", ENGINEER_PASSWORD)
        terminal.media.trust(session, work / "keys" / "1.root.json")


# ---- the apply, in a process of its own ------------------------------------------------------------


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
    return out


def child(job: dict[str, Any]) -> dict[str, Any]:
    import tracemalloc

    from engine.media.reader import MediaProgress
    from engine.terminal import Terminal, face_provider

    work = Path(job["work"])
    config = _config(work)
    terminal = Terminal.open(config, faces=face_provider(config), scrypt=_scrypt())
    try:
        session = terminal.sign_in("benchmarker", ENGINEER_PASSWORD)
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # the peak (VmHWM) counts from here: the apply's alone
        base = _status()["VmRSS"]
        if job["tracemalloc"]:
            tracemalloc.start()
        phases: dict[str, float] = {}
        peaks: dict[str, int] = {}  # the peak so far when each phase began
        samples: list[int] = []
        last = [0.0]

        def progress(p: MediaProgress) -> None:
            now = time.monotonic()
            if p.phase not in phases:
                phases[p.phase] = now
                peaks[p.phase] = _status()["VmHWM"] - base
            if now - last[0] >= 0.5:
                last[0] = now
                samples.append(_status()["VmRSS"])

        started = time.monotonic()
        reading = terminal.media.read(session, work / "repo", progress=progress)
        read_done = time.monotonic()
        after_read = _status()["VmHWM"]
        result = terminal.media.apply(session, reading, progress=progress)
        done = time.monotonic()
        traced = tracemalloc.get_traced_memory()[1] if job["tracemalloc"] else None
        status = _status()
        return {
            "bytes": reading.total_bytes,
            "targets": len(reading.blobs),
            "packages": [p.describe() for p in result.packages],
            "notices": result.notices,
            "read_s": read_done - started,
            "copy_s": phases.get("staged", done) - phases.get("copying", read_done),
            "transaction_s": phases.get("committed", done) - phases.get("staged", done),
            "index_s": phases.get("done", done) - phases.get("committed", done),
            "apply_s": done - read_done,
            "total_s": done - started,
            "base_rss": base,
            "peak_rss_after_read": after_read,
            "peak_rss": status["VmHWM"],
            "rss_samples_max": max(samples, default=0),
            "peak_over_base_when_phase_began": peaks,
            "tracemalloc_peak": traced,
        }
    finally:
        terminal.close()


def run_child(work: Path, trace: bool) -> dict[str, Any]:
    job = json.dumps({"work": str(work), "tracemalloc": trace})
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child"],
        input=job,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("RFR_")},
    )
    if done.returncode != 0:
        raise SystemExit(f"the apply process failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---- the driver ----------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def bench(size: int, shape: str, image_bytes: int, root: Path, trace: bool, keep: bool) -> dict[str, Any]:
    need = size * (5 if shape == "library" else 3) + (2 << 30)
    free = shutil.disk_usage(root).free
    if free < need:
        raise SystemExit(f"{root} has {free:,} bytes free; {size:,} bytes as '{shape}' need about {need:,}")
    work = Path(tempfile.mkdtemp(prefix=f"rfr-media-bench-{shape}-", dir=root))
    try:
        print(f"{shape} {size / 1e9:g} GB: building and signing the medium in {work}", file=sys.stderr, flush=True)
        built = build_library_medium(work, size, image_bytes) if shape == "library" else build_models_medium(work, size)
        make_terminal(work)
        print(f"{shape} {size / 1e9:g} GB: applying it in a fresh process", file=sys.stderr, flush=True)
        measured = run_child(work, trace)
        ws_bytes = sum(p.stat().st_size for p in (work / "ws").rglob("*") if p.is_file())
        return {"shape": shape, "size": size, **built, **measured, "workspace_bytes": ws_bytes}
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def report(rows: list[dict[str, Any]]) -> None:
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(
        "| shape | medium | targets | largest target | read (TUF, plan) | copy+hash+encrypt | transaction | index "
        "| apply total | MB/s (apply) | MB/s (copy) | peak RSS over base | base RSS | tracemalloc peak |"
    )
    print("| --- " * 14 + "|")
    for r in rows:
        mb = r["bytes"] / 1e6
        traced = "-" if r["tracemalloc_peak"] is None else _mib(r["tracemalloc_peak"])
        print(
            f"| {r['shape']} | {r['bytes'] / 1e9:.2f} GB | {r['targets']:,} | {_mib(r['largest_target'])} "
            f"| {r['read_s']:.1f} s | {r['copy_s']:.1f} s | {r['transaction_s']:.1f} s | {r['index_s']:.1f} s "
            f"| {r['apply_s']:.1f} s | {mb / r['apply_s']:.0f} | {mb / max(r['copy_s'], 1e-9):.0f} "
            f"| {_mib(r['peak_rss'] - r['base_rss'])} | {_mib(r['base_rss'])} | {traced} |"
        )
    print("\n" + json.dumps(rows, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[2.0], help="medium sizes (GB, 1e9 bytes)")
    parser.add_argument("--shape", choices=("library", "models"), default="library")
    parser.add_argument("--image-kb", type=int, default=256, help="library: bytes of each image, in KiB")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()), help="where to build (needs room)")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(sys.stdin.read()))))
        return 0
    rows = [
        bench(int(gb * 1e9), args.shape, args.image_kb << 10, args.work, args.tracemalloc, args.keep)
        for gb in args.gigabytes
    ]
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
