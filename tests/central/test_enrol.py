"""Central enrolment on a local Dask cluster: the terminal's rules, sealed outputs, restart without redoing work."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.central import CentralError
from engine.central.enrol import enrol
from engine.central.outputs import EnrolmentManifest, EnrolmentOutput, Outcome
from engine.faces.pipeline import FaceEngine, model_identity
from engine.library.enrol import FaceAnalyzer, read_reference_image, reference_template
from tests.central.conftest import CHEAP, LFW_IMAGES, PASSPHRASE, write_manifest
from tests.synthetic import SYNTHETIC_MODEL_ID, SyntheticFaceEngine, synthetic_jpeg


@pytest.fixture(scope="module")
def face_engine() -> FaceEngine:
    return FaceEngine.open("CPU")


def test_enrolment_on_a_local_cluster_follows_the_terminals_rules(
    enrolled: Path, face_engine: FaceEngine, data_root: Path
) -> None:
    output = EnrolmentOutput.open(enrolled, PASSPHRASE)
    assert output.complete and output.header.rows == len(LFW_IMAGES)
    assert (output.header.model_id, output.header.model_sha256) == model_identity()
    outcomes = list(output.outcomes())
    assert [o.status for o in outcomes] == ["enrolled"] * len(LFW_IMAGES)
    for outcome, (person, image) in zip(outcomes, LFW_IMAGES, strict=True):
        path = data_root / "lfw" / "images" / person / image
        read = read_reference_image(path)
        assert not isinstance(read, Exception) and isinstance(read, tuple)
        made = reference_template(read[0], str(path), face_engine)
        assert not isinstance(made, Exception) and hasattr(made, "vector")
        # The same rules and the same engine in a worker process: the same template and face box.
        np.testing.assert_allclose(outcome.vector, made.vector, atol=1e-5)
        assert outcome.box == tuple(made.face.box.as_list())
        assert outcome.media_type == "image/jpeg" and (outcome.width, outcome.height) == (250, 250)


def test_nothing_biometric_is_written_in_plaintext(enrolled: Path, data_root: Path) -> None:
    output = EnrolmentOutput.open(enrolled, PASSPHRASE)
    secrets_ = [o.template for o in output.outcomes() if o.template] + [
        (data_root / "lfw" / "images" / p / i).read_bytes()[:4096] for p, i in LFW_IMAGES
    ]
    for o in output.outcomes():
        secrets_ += [bytes.fromhex(o.sha256 or ""), (o.sha256 or "").encode()]  # image hashes are sealed too
    written = [p.read_bytes() for p in enrolled.rglob("*") if p.is_file()]
    assert written
    for data in written:
        for secret in secrets_:
            assert secret and secret not in data
        assert b"CRO-" not in data and b"Abel_Pacheco" not in data  # the manifest's subjects are sealed


def test_a_wrong_passphrase_or_another_manifest_is_refused_before_any_work(
    enrolled: Path, tmp_path: Path, data_root: Path
) -> None:
    with pytest.raises(CentralError, match="the central passphrase does not open it"):
        EnrolmentOutput.open(enrolled, "not the central passphrase")
    other = write_manifest(tmp_path / "other.csv", data_root, extra_rows=[{"subject": "X", "image": "x.jpg"}])
    with pytest.raises(CentralError, match="was started from another manifest"):
        enrol(other, enrolled, PASSPHRASE, kdf=CHEAP)


class CountingEngine:
    """The real face engine, counting the images it is asked to analyse; fails on call ``fail_at`` when armed."""

    calls = 0
    fail_at: int | None = None
    lock = threading.Lock()
    engine: FaceEngine | None = None

    @property
    def model_id(self) -> str:
        assert self.engine is not None
        return self.engine.model_id

    @property
    def model_sha256(self) -> str:
        assert self.engine is not None
        return self.engine.model_sha256

    def analyze(self, rgb: Any, upsample: int = 0, embed: bool = True) -> list[Any]:
        cls = type(self)
        with cls.lock:
            cls.calls += 1
            if cls.fail_at is not None and cls.calls >= cls.fail_at:
                raise RuntimeError("simulated failure of a worker")
        assert self.engine is not None
        return self.engine.analyze(rgb, upsample=upsample, embed=embed)


def open_counting() -> FaceAnalyzer:
    return CountingEngine()


def test_a_restart_after_a_failure_redoes_nothing_finished(
    tmp_path: Path, data_root: Path, face_engine: FaceEngine, enrolled: Path
) -> None:
    CountingEngine.engine = face_engine
    CountingEngine.calls, CountingEngine.fail_at = 0, 4  # rows 0-2 are analysed, then the fourth call fails
    manifest = write_manifest(
        tmp_path / "manifest.csv",
        data_root,
        extra_rows=[{"subject": "CRO-missing", "image": str(tmp_path / "no-such.jpg")}],  # skipped, never analysed
    )
    out = tmp_path / "out"
    options: dict[str, Any] = {
        "workers": 1,
        "threads_per_worker": 1,
        "processes": False,  # worker threads in this process, so the counter sees every call
        "batch_size": 2,
        "open_engine": open_counting,
        "model": model_identity(),
        "kdf": CHEAP,
    }
    with pytest.raises(CentralError, match=r"enrolment stopped: a batch failed.*run the same command again") as caught:
        enrol(manifest, out, PASSPHRASE, **options)
    assert "simulated failure" in caught.value.diagnostics() and "\n" not in caught.value.diagnostics()
    first = EnrolmentOutput.open(out, PASSPHRASE)
    assert 0 in first.finished and not first.complete  # batch 0 (rows 0, 1) finished before the failure
    to_do = sum(
        1 for b in first.remaining for row in first.header.batch_rows(b) if row < len(LFW_IMAGES)
    )  # images still to analyse (the missing file is skipped before the engine)
    kept = {b: first.read_part(b) for b in first.finished}

    CountingEngine.calls, CountingEngine.fail_at = 0, None
    summary = enrol(manifest, out, PASSPHRASE, **options)
    assert CountingEngine.calls == to_do  # exactly the unfinished images: nothing finished was computed again
    assert summary.resumed == sum(len(first.header.batch_rows(b)) for b in kept)
    done = EnrolmentOutput.open(out, PASSPHRASE)
    assert done.complete
    for batch, outcomes in kept.items():
        assert done.read_part(batch) == outcomes  # finished parts untouched
    outcomes = list(done.outcomes())
    assert [o.status for o in outcomes] == ["enrolled"] * len(LFW_IMAGES) + ["skipped"]
    assert outcomes[-1].reason == "unreadable"
    reference = list(EnrolmentOutput.open(enrolled, PASSPHRASE).outcomes())
    for mine, theirs in zip(outcomes, reference, strict=False):
        np.testing.assert_allclose(mine.vector, theirs.vector, atol=1e-5)

    # A third run finds everything finished: no cluster, no engine call.
    CountingEngine.calls = 0
    again = enrol(manifest, out, PASSPHRASE, **options)
    assert CountingEngine.calls == 0 and again.computed == 0 and again.workers == 0


def test_a_part_finished_after_the_last_checkpoint_is_found_and_kept(tmp_path: Path, enrolled: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(enrolled, copy)
    (copy / "checkpoint.sealed").unlink()  # as if the process died between a part and the checkpoint
    output = EnrolmentOutput.open(copy, PASSPHRASE)
    assert output.complete and output.tally == {"enrolled": len(LFW_IMAGES)}
    part = copy / "parts" / "00000001.sealed"
    part.write_bytes(part.read_bytes()[:-1] + bytes([part.read_bytes()[-1] ^ 1]))
    (copy / "checkpoint.sealed").unlink(missing_ok=True)
    with pytest.raises(CentralError, match="fails its authentication"):
        EnrolmentOutput.open(copy, PASSPHRASE)


def test_a_manifest_row_naming_the_face_carries_its_point_to_the_outcome(tmp_path: Path) -> None:
    """The same photograph of two faces of a size (64x64: left half, right half) three times: refused by the
    rules; enrolled with the right face when its row names a point on it; refused when the point is in neither."""
    for name, seed in (("plain.jpg", 1), ("named.jpg", 2), ("missed.jpg", 3)):
        (tmp_path / name).write_bytes(synthetic_jpeg(seed, 0, kind="pair"))
    (tmp_path / "single.jpg").write_bytes(synthetic_jpeg(4, 0))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "subject,image,face_x,face_y\nA,plain.jpg,,\nB,named.jpg,40,10\nC,missed.jpg,64,10\nD,single.jpg,,\n"
    )
    rows = EnrolmentManifest.load(manifest).rows
    assert [r.face_point for r in rows] == [None, (40, 10), (64, 10), None]
    model = (SYNTHETIC_MODEL_ID, SyntheticFaceEngine().model_sha256)
    summary = enrol(
        manifest, tmp_path / "out", PASSPHRASE, processes=False, open_engine=SyntheticFaceEngine, model=model, kdf=CHEAP
    )
    assert summary.enrolled == 2 and summary.skipped_by_reason == {"several_faces": 1, "no_face_at_point": 1}
    assert (summary.face_named_by_person, summary.chose_dominant_face) == (1, 0)
    assert summary.to_json()["face_named_by_person"] == 1
    output = EnrolmentOutput.open(tmp_path / "out", PASSPHRASE)
    assert output.chosen == {"person": 1, "only": 1}
    plain, named, missed, single = output.outcomes()
    assert plain.reason == "several_faces" and missed.reason == "no_face_at_point"
    assert missed.detail is not None and "(face_x 64, face_y 10) is outside the photograph" in missed.detail
    assert named.status == "enrolled" and named.chosen_by == "person" and named.box == (32, 0, 63, 63)
    assert single.status == "enrolled" and single.chosen_by == "only" and not single.chose_dominant


def test_outcomes_written_before_chosen_by_still_read() -> None:
    """A part sealed by an earlier version carries only ``chose_dominant``; one written now carries both."""
    template = np.zeros(128, "<f4").tobytes()
    now = Outcome(0, "enrolled", "ab" * 32, "image/jpeg", 64, 64, (32, 0, 63, 63), template, "person").to_json()
    assert now["chosen_by"] == "person" and now["chose_dominant"] is False
    assert Outcome.from_json(now).chosen_by == "person"
    for chose_dominant, chosen_by in ((True, "dominant"), (False, "only")):
        earlier = {k: v for k, v in now.items() if k != "chosen_by"} | {"chose_dominant": chose_dominant}
        assert Outcome.from_json(earlier).chosen_by == chosen_by
    with pytest.raises(ValueError, match="chosen_by"):
        Outcome.from_json(now | {"chosen_by": "guessed"})


def test_a_checkpoint_written_before_faces_were_counted_by_how_chosen_counts_them_from_the_parts(
    tmp_path: Path,
) -> None:
    import json

    from engine.central.sealed import write_atomic

    (tmp_path / "named.jpg").write_bytes(synthetic_jpeg(2, 0, kind="pair"))
    (tmp_path / "single.jpg").write_bytes(synthetic_jpeg(4, 0))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("subject,image,face_x,face_y\nB,named.jpg,40,10\nD,single.jpg,,\n")
    model = (SYNTHETIC_MODEL_ID, SyntheticFaceEngine().model_sha256)
    out = tmp_path / "out"
    enrol(manifest, out, PASSPHRASE, processes=False, open_engine=SyntheticFaceEngine, model=model, kdf=CHEAP)
    output = EnrolmentOutput.open(out, PASSPHRASE)
    assert output.chosen == {"person": 1, "only": 1}
    earlier = json.dumps({"batches": [[0, output.header.batches]], "tally": output.tally}).encode()
    write_atomic(out / "checkpoint.sealed", output._key.seal("checkpoint", output._context(), earlier))
    assert EnrolmentOutput.open(out, PASSPHRASE).chosen == {"person": 1, "only": 1}
    again = enrol(manifest, out, PASSPHRASE, processes=False, open_engine=SyntheticFaceEngine, model=model, kdf=CHEAP)
    assert again.computed == 0 and again.face_named_by_person == 1
