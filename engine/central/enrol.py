"""Central enrolment at scale: a manifest of custody images turned into templates on a Dask cluster, restartably.

A force's library is millions of images (days of work on one machine: docs/benchmarks.md), so
the work is cut into batches of rows and run on Dask's ``distributed`` scheduler: a
``LocalCluster`` on this machine by default, or a real cluster (``scheduler`` address). Each
worker opens the face engine once (``FaceEngineOnWorker``, a worker plugin) and templates its
batches with exactly the terminal's enrolment rules (``engine.library.enrol.read_reference_image``
and ``reference_template``: size and type limits, faces looked for enlarged, the only face or the
clearly dominant one, or the face holding the point a row names with ``face_x``, ``face_y``).
Workers read the images themselves (a real cluster needs the image paths visible on every worker)
and send back only the outcome of each row: template, image hash, face box and how the face was
chosen, or why it was skipped; never the image bytes.

The client seals each finished batch into the output folder (``engine.central.outputs``) as it
arrives, and a checkpoint of finished batches is rewritten atomically: run the same command
again after any failure (a worker lost, the machine restarted, Ctrl-C) and only unfinished
batches are sent. Progress goes to a callback.

Workers never write what they hold to disk: memory spilling is switched off for the local
cluster (Dask would otherwise spill results, templates included, to its scratch folder in
plaintext); a real cluster must be configured the same way (README, "The central unit").
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from engine.central import CentralError
from engine.central.outputs import EnrolmentManifest, EnrolmentOutput, Outcome
from engine.central.sealed import DEFAULT_KDF, Kdf
from engine.library.enrol import FaceAnalyzer, Skipped, read_reference_image, reference_template

PLUGIN_NAME = "rfr-face-engine"
DEFAULT_BATCH = 32
MAX_BATCH = 4096
_CHECKPOINT_EVERY = 2.0  # seconds between checkpoint rewrites (and always at the end, or on failure)
# Spilling results to disk would write templates in plaintext to the workers' scratch folders.
NO_SPILL = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": False,
}


@dataclass(frozen=True)
class OpenFaceEngine:
    """How a worker opens the face engine (picklable: it is sent to each worker once)."""

    models_dir: str | None = None
    device: str = "CPU"

    def __call__(self) -> FaceAnalyzer:
        from engine.faces.pipeline import FaceEngine

        return FaceEngine.open(self.device, Path(self.models_dir) if self.models_dir else None)


class FaceEngineOnWorker(WorkerPlugin):  # type: ignore[misc]  # distributed has no type information
    """Opens the face engine once per worker, when the worker starts (or joins), for all its batches.

    ``share_cores`` (local worker processes): worker ``i`` of ``n`` is kept to its own share of this
    machine's cores before the engine opens. OpenVINO sizes its thread pool from the cores a process
    may use, so workers left on every core run more inference threads than there are cores and get
    in each other's way (measured in docs/benchmarks.md, "Central enrolment on Dask"). A real
    cluster's workers are placed by whoever runs them.
    """

    name = PLUGIN_NAME

    def __init__(self, open_engine: Callable[[], FaceAnalyzer], share_cores: int = 0) -> None:
        self.open_engine = open_engine
        self.share_cores = share_cores
        self.engine: FaceAnalyzer | None = None

    def setup(self, worker: Any) -> None:
        if self.share_cores > 1 and isinstance(worker.name, int):
            _keep_to_share(worker.name, self.share_cores)
        self.engine = self.open_engine()


def _keep_to_share(index: int, workers: int) -> None:
    """Restrict this process (every thread it has) to worker ``index``'s share of the cores it may use."""
    if not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    per = len(cores) // workers
    if per < 1:
        return  # more workers than cores: nothing to share out
    share = cores[(index % workers) * per : (index % workers + 1) * per]
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), share)
        except OSError:
            continue  # a thread that ended meanwhile


def template_batch(batch: int, items: list[tuple[int, str, tuple[int, int] | None]], upsample: int) -> dict[str, Any]:
    """Run on a worker: each row (number, path, face point) of one batch through the terminal's enrolment rules;
    outcomes only."""
    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    engine = getattr(plugin, "engine", None)
    if engine is None:
        raise RuntimeError(f"worker {worker.address} has no face engine (plugin {PLUGIN_NAME} not set up)")
    outcomes = [_template_row(engine, row, Path(path), upsample, point).to_json() for row, path, point in items]
    return {"batch": batch, "model_sha256": engine.model_sha256, "worker": worker.address, "outcomes": outcomes}


def _template_row(
    engine: FaceAnalyzer, row: int, path: Path, upsample: int, point: tuple[int, int] | None = None
) -> Outcome:
    read = read_reference_image(path)
    if isinstance(read, Skipped):
        return Outcome(row, "skipped", None, reason=read.reason, detail=read.detail)
    data, media_type = read
    digest = hashlib.sha256(data).hexdigest()
    made = reference_template(data, str(path), engine, upsample=upsample, point=point)
    if isinstance(made, Skipped):
        return Outcome(row, "skipped", digest, reason=made.reason, detail=made.detail)
    box = made.face.box
    return Outcome(
        row,
        "enrolled",
        digest,
        media_type,
        int(made.rgb.shape[1]),
        int(made.rgb.shape[0]),
        (int(box.left), int(box.top), int(box.right), int(box.bottom)),
        made.vector.astype("<f4").tobytes(),
        made.chosen_by,
    )


@dataclass(frozen=True)
class CentralProgress:
    done: int  # rows finished, this run and before
    total: int
    enrolled: int  # this run
    skipped: int  # this run
    images_per_second: float  # this run


@dataclass
class EnrolmentSummary:
    output: str
    rows: int
    resumed: int = 0  # rows already finished when this run started (not computed again)
    computed: int = 0  # rows computed by this run
    enrolled: int = 0  # over the whole enrolment
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    chose_dominant_face: int = 0  # over the whole enrolment: enrolled with the clearly dominant of several faces
    face_named_by_person: int = 0  # over the whole enrolment: enrolled with the face the manifest's point named
    workers: int = 0
    threads: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "rows": self.rows,
            "resumed": self.resumed,
            "computed": self.computed,
            "enrolled": self.enrolled,
            "skipped_by_reason": dict(sorted(self.skipped_by_reason.items())),
            "chose_dominant_face": self.chose_dominant_face,
            "face_named_by_person": self.face_named_by_person,
            "workers": self.workers,
            "threads": self.threads,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


@contextmanager
def dask_client(
    scheduler: str | None = None, *, workers: int = 1, threads_per_worker: int = 1, processes: bool = True
) -> Iterator[Client]:
    """A client on ``scheduler``, or on a LocalCluster started (and stopped) here.

    Processes, not threads, by default: each network of the face engine runs on one inference
    request behind a lock, and the landmark trees, face alignment and JPEG decoding are Python and
    numpy holding the GIL much of the time, so threads in one process mostly wait for each other.
    Worker processes each open their own engine and run side by side (measured in
    docs/benchmarks.md, "Central enrolment on Dask"); threads within a worker overlap only the
    reading and decoding of images with inference. ``processes=False`` runs the workers as threads
    of this process (tests and small runs: no start-up of worker processes).
    """
    with dask.config.set(NO_SPILL):
        if scheduler:
            try:
                client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise CentralError(
                    f"cannot reach the Dask scheduler at {scheduler} ({exc}): check the address and that it runs"
                ) from None
            try:
                yield client
            finally:
                client.close()
            return
        if not 1 <= workers <= 256 or not 1 <= threads_per_worker <= 64:
            raise CentralError("--workers must be 1 to 256 and --threads-per-worker 1 to 64")
        # Worker processes talk to the scheduler over TCP on this machine only; threads use Dask's in-process comm.
        where = {"host": "127.0.0.1"} if processes else {}
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            memory_limit=0,
            silence_logs=logging.ERROR,
            **where,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()


def enrol(
    manifest_path: Path,
    out_dir: Path,
    passphrase: str,
    *,
    scheduler: str | None = None,
    workers: int = 1,
    threads_per_worker: int = 1,
    processes: bool = True,
    batch_size: int | None = None,
    upsample: int | None = None,
    models_dir: Path | None = None,
    device: str = "CPU",
    open_engine: Callable[[], FaceAnalyzer] | None = None,
    model: tuple[str, str] | None = None,
    progress: Callable[[CentralProgress], None] | None = None,
    kdf: Kdf = DEFAULT_KDF,
    share_cores: bool = True,
) -> EnrolmentSummary:
    """Enrol every image row of the manifest into ``out_dir``, or finish an enrolment started there before.

    ``open_engine`` and ``model`` (id, sha256) replace the real face engine and its identity
    (tests count its calls); by default workers open ``FaceEngine`` from ``models_dir``.
    ``share_cores=False`` leaves local worker processes on every core (the benchmark compares).
    """
    started = time.monotonic()
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH:
        raise CentralError(f"--batch-size must be between 1 and {MAX_BATCH}")
    if upsample is not None and not 0 <= upsample <= 2:
        raise CentralError("--upsample must be 0, 1 or 2")
    manifest = EnrolmentManifest.load(manifest_path)
    if model is None:
        from engine.faces.pipeline import model_identity

        model = model_identity(models_dir)
    out_dir = Path(out_dir)
    if (out_dir / "enrolment.json").exists():
        output = EnrolmentOutput.open(out_dir, passphrase)
        _check_same(output, manifest, model, batch_size, upsample)
    else:
        output = EnrolmentOutput.create(
            out_dir,
            manifest,
            passphrase,
            model_id=model[0],
            model_sha256=model[1],
            batch_size=DEFAULT_BATCH if batch_size is None else batch_size,
            upsample=0 if upsample is None else upsample,
            kdf=kdf,
        )
    header = output.header
    summary = EnrolmentSummary(str(out_dir), header.rows)
    summary.resumed = sum(len(header.batch_rows(b)) for b in output.finished)
    remaining = output.remaining
    if remaining:
        engine_opener = open_engine or OpenFaceEngine(str(models_dir) if models_dir else None, device)
        with dask_client(
            scheduler, workers=workers, threads_per_worker=threads_per_worker, processes=processes
        ) as client:
            # Local worker processes: each kept to its own share of the cores (FaceEngineOnWorker).
            share = workers if share_cores and scheduler is None and processes else 0
            _run(client, output, manifest, remaining, engine_opener, summary, progress, share)
    summary.enrolled = output.tally.get("enrolled", 0)
    summary.skipped_by_reason = {k: v for k, v in output.tally.items() if k != "enrolled"}
    summary.chose_dominant_face = output.chosen.get("dominant", 0)
    summary.face_named_by_person = output.chosen.get("person", 0)
    summary.seconds = time.monotonic() - started
    return summary


def _check_same(
    output: EnrolmentOutput,
    manifest: EnrolmentManifest,
    model: tuple[str, str],
    batch_size: int | None,
    upsample: int | None,
) -> None:
    """A restart must be the same enrolment: same manifest, face model, batches and detector start (when given)."""
    header = output.header
    where = f"enrolment output {output.directory}"
    if header.manifest_sha256 != manifest.sha256:
        raise CentralError(
            f"{where} was started from another manifest ({header.manifest_name}, changed since?): "
            "use a new --out folder for a new manifest"
        )
    if header.model_sha256 != model[1]:
        raise CentralError(f"{where} was started with another face model: use a new --out folder")
    if batch_size not in (None, header.batch_size) or upsample not in (None, header.upsample):
        raise CentralError(
            f"{where} was started with --batch-size {header.batch_size} --upsample {header.upsample}: "
            "give the same to continue it"
        )


def _run(
    client: Client,
    output: EnrolmentOutput,
    manifest: EnrolmentManifest,
    remaining: list[int],
    open_engine: Callable[[], FaceAnalyzer],
    summary: EnrolmentSummary,
    progress: Callable[[CentralProgress], None] | None,
    share_cores: int,
) -> None:
    header = output.header
    try:
        client.register_plugin(FaceEngineOnWorker(open_engine, share_cores), name=PLUGIN_NAME)
    except Exception as exc:
        raise CentralError(f"the Dask workers cannot open the face engine ({_cause(exc)})") from None
    threads = client.nthreads()
    summary.workers, summary.threads = len(threads), sum(threads.values())
    if not threads:
        raise CentralError("the Dask cluster has no workers: start some, then run the command again")
    window = 4 * summary.threads  # batches in flight: enough to keep every thread busy, never all at once
    paths = [str(row.path) for row in manifest.rows]
    points = [row.face_point for row in manifest.rows]
    queue = iter(remaining)
    done_rows = summary.resumed
    last_checkpoint = time.monotonic()
    run_started = time.monotonic()

    inflight: set[Any] = set()  # futures not yet handled; a handled one is dropped, so its result is released

    def submit(batch: int) -> Any:
        items = [(row, paths[row], points[row]) for row in header.batch_rows(batch)]
        future = client.submit(
            template_batch, batch, items, header.upsample, key=f"rfr-enrol-{header.id}-{batch}", pure=False
        )
        inflight.add(future)
        return future

    futures = as_completed([submit(b) for _, b in zip(range(window), queue, strict=False)], with_results=False)
    try:
        for future in futures:
            inflight.discard(future)
            try:
                result = future.result()
            except Exception as exc:
                raise CentralError(
                    f"enrolment stopped: a batch failed on the cluster ({_cause(exc)}); "
                    f"{len(output.finished)} of {header.batches} batches are done and kept: run the same command "
                    "again to continue"
                ) from None
            if result["model_sha256"] != header.model_sha256:
                raise CentralError(
                    f"worker {result['worker']} has another face model ({result['model_sha256'][:12]}...): every "
                    "worker needs the same models folder; nothing from it was kept"
                )
            outcomes = [Outcome.from_json(o) for o in result["outcomes"]]
            output.write_part(int(result["batch"]), outcomes)
            summary.computed += len(outcomes)
            done_rows += len(outcomes)
            summary.enrolled += sum(o.status == "enrolled" for o in outcomes)
            if time.monotonic() - last_checkpoint >= _CHECKPOINT_EVERY:
                output.write_checkpoint()
                last_checkpoint = time.monotonic()
            following = next(queue, None)
            if following is not None:
                futures.add(submit(following))
            if progress is not None:
                elapsed = max(time.monotonic() - run_started, 1e-9)
                progress(
                    CentralProgress(
                        done_rows,
                        header.rows,
                        summary.enrolled,
                        summary.computed - summary.enrolled,
                        summary.computed / elapsed,
                    )
                )
    finally:
        if inflight:
            client.cancel(list(inflight))
        output.write_checkpoint()


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
