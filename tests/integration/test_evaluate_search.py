"""``rfr evaluate search``: a throwaway gallery of real LFW photographs in memory, searched as a library is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli import main
from engine.evaluation.search import Gallery, evaluation_json, probe_paths, search_probes
from engine.faces.pipeline import FaceEngine
from engine.library.enrol import load_rgb
from engine.library.index import IndexSettings

MATES = ("Ben_Glisan", "Colin_Powell", "Gloria_Macapagal_Arroyo")  # Ben_Glisan_0001 has a background face
DISTRACTORS = ("Aaron_Eckhart", "Abbas_Kiarostami", "Zydrunas_Ilgauskas")
CANDIDATE_KEYS = {
    "rank",
    "score",
    "distance",
    "subject",
    "image_id",
    "library",
    "estimated_false_match_rate",
    "false_match_rate_below",
    "false_matches_behind_rate",
    "statement_pairs",
    "false_match_words",
    "meaning",
    "within_operating_threshold",
    "image",
}


def link(target: Path, at: Path) -> Path:
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(target)  # the photographs stay where they are; nothing is copied
    return at


@pytest.fixture
def photos(data_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A gallery (mates' first photographs, one-photo distractors) and probes (the mates' second
    photographs, an unreadable file, a picture with no face)."""
    images = data_root / "lfw" / "images"
    gallery, probes = tmp_path / "gallery", tmp_path / "probes"
    for name in (*MATES, *DISTRACTORS):
        link(images / name / f"{name}_0001.jpg", gallery / name / f"{name}_0001.jpg")
    for name in MATES:
        link(images / name / f"{name}_0002.jpg", probes / f"{name}_0002.jpg")
    (probes / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    ok, png = cv2.imencode(".png", np.random.default_rng(1).integers(90, 160, (120, 120, 3), dtype=np.uint8))
    assert ok
    (probes / "wall.png").write_bytes(png.tobytes())  # a small picture of no face (a dog photo took 13 s at 4x)
    return gallery, probes


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine.open("CPU")


def test_gallery_is_built_in_memory_with_enrolments_rules(photos: tuple[Path, Path], engine: FaceEngine) -> None:
    gallery_dir, probes_dir = photos
    with Gallery.build(gallery_dir, engine, load_rgb, settings=IndexSettings()) as gallery:
        report = gallery.report.to_json()
        assert report["enrolled"] == 6 and report["refused"] == 0 and report["subjects"] == 6
        assert report["chose_dominant_face"] == 1  # Ben_Glisan_0001: the central face, not the one behind
        assert gallery.report.chose_dominant_face == ["Ben_Glisan/Ben_Glisan_0001.jpg"]
        results = search_probes(gallery, probe_paths(probes_dir), engine, load_rgb, 3)
        payload = evaluation_json(gallery, results, None, {"calibrated": False}, 3, "notice")
    by_name = {Path(p["path"]).name: p for p in payload["probes"]}
    for name in MATES:
        entry = by_name[f"{name}_0002.jpg"]
        assert "error" not in entry and entry["candidates"][0]["subject"] == name  # rank 1 is the mate
        assert [c["rank"] for c in entry["candidates"]] == [1, 2, 3]
    assert payload["index"]["same_as_exhaustive"] == payload["index"]["probes_searched"] == 3


def test_the_command_prints_the_search_json_and_reports_failed_probes(
    photos: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery_dir, probes_dir = photos
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status = main(
        ["evaluate", "search", "--gallery", str(gallery_dir), "--probes", str(probes_dir), "--top", "5", "--json"]
    )
    out, err = capsys.readouterr()
    assert status == 1  # two probes failed, and the batch still ran to the end
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    payload = json.loads(out)
    assert set(payload) >= {"probes", "scoring", "top_k", "gallery", "index", "notice"}
    assert payload["scoring"]["calibrated"] is True and payload["scoring"]["threshold"] > 0
    entries = {Path(p["path"]).name: p for p in payload["probes"]}
    assert list(entries) == [
        "Ben_Glisan_0002.jpg",
        "Colin_Powell_0002.jpg",
        "Gloria_Macapagal_Arroyo_0002.jpg",
        "broken.jpg",
        "wall.png",
    ]
    assert entries["broken.jpg"]["candidates"] == [] and entries["broken.jpg"]["error"]
    assert entries["wall.png"]["error"] == (
        "no face found at the photograph's own size, 2x enlargement or 4x enlargement: nothing was searched"
    )
    for name in MATES:
        candidates = entries[f"{name}_0002.jpg"]["candidates"]
        assert len(candidates) == 5 and set(candidates[0]) == CANDIDATE_KEYS
        assert candidates[0]["subject"] == name and candidates[0]["image"] == f"{name}/{name}_0001.jpg"
        assert candidates[0]["library"] == "gallery" and candidates[0]["within_operating_threshold"] is True
        distances = [c["distance"] for c in candidates]
        assert distances == sorted(distances)
    assert "rfr: " in err and "broken.jpg" in err and "wall.png" in err


def test_one_good_probe_exits_0_and_prints_text(photos: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    gallery_dir, probes_dir = photos
    status = main(
        [
            "evaluate",
            "search",
            "--gallery",
            str(gallery_dir),
            "--probes",
            str(probes_dir / "Colin_Powell_0002.jpg"),
            "--top",
            "2",
        ]
    )
    out, _ = capsys.readouterr()
    assert status == 0
    assert "6 of 6 photographs of 6 subjects enrolled in memory, 0 refused, 1 with the dominant of several" in out
    assert "Colin_Powell/Colin_Powell_0001.jpg" in out


def test_a_probe_of_two_people_of_a_size_is_searched_only_with_the_officers_stand_in(
    photos: tuple[Path, Path], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Colin_Powell_0068 holds two faces of a size: no face is clearly his, so by default nothing is
    searched; with ``--probe-face centre`` the face nearest the centre stands for the officer's choice."""
    gallery_dir, _ = photos
    pair = link(data_root / "lfw" / "images" / "Colin_Powell" / "Colin_Powell_0068.jpg", tmp_path / "pair.jpg")
    command = ["evaluate", "search", "--gallery", str(gallery_dir), "--probes", str(pair), "--json"]
    assert main(command) == 1
    (entry,) = json.loads(capsys.readouterr().out)["probes"]
    assert entry["error"].startswith("2 faces found and none clearly dominant") and entry["candidates"] == []
    assert main([*command, "--probe-face", "centre"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (entry,) = payload["probes"]
    assert payload["probe_face"] == "centre" and entry["face_chosen"] == "centre" and entry["faces"] == 2
    assert entry["candidates"][0]["subject"] == "Colin_Powell"


def test_a_gallery_photograph_of_two_people_of_a_size_is_enrolled_only_with_a_persons_stand_in(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Colin_Powell_0068 as his gallery photograph: two faces of a size, refused by enrolment's rules, so his
    probe finds someone else; with ``--gallery-face centre`` the face at the centre is enrolled as if a person
    had named it (face_x, face_y), and his probe finds him first."""
    images = data_root / "lfw" / "images"
    gallery, probe = tmp_path / "gallery", tmp_path / "Colin_Powell_0002.jpg"
    link(images / "Colin_Powell" / "Colin_Powell_0068.jpg", gallery / "Colin_Powell" / "Colin_Powell_0068.jpg")
    for name in DISTRACTORS:
        link(images / name / f"{name}_0001.jpg", gallery / name / f"{name}_0001.jpg")
    link(images / "Colin_Powell" / "Colin_Powell_0002.jpg", probe)
    command = ["evaluate", "search", "--gallery", str(gallery), "--probes", str(probe), "--top", "1", "--json"]
    assert main(command) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["gallery_face"] == "rules" and payload["gallery"]["refused_by_reason"] == {"several_faces": 1}
    assert payload["probes"][0]["candidates"][0]["subject"] != "Colin_Powell"
    assert main([*command, "--gallery-face", "centre"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["gallery_face"] == "centre" and payload["gallery"]["refused"] == 0
    assert payload["gallery"]["face_named_at_centre"] == 1 and payload["gallery"]["chose_dominant_face"] == 0
    assert payload["probes"][0]["candidates"][0]["subject"] == "Colin_Powell"
    assert main([*command[:-1], "--gallery-face", "centre"]) == 0
    assert "0 with the dominant of several faces, 1 with the face at the centre, in place of a person naming it," in (
        capsys.readouterr().out
    )


def test_refuses_a_gallery_that_is_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["evaluate", "search", "--gallery", str(tmp_path / "none"), "--probes", str(tmp_path)])
    assert status != 0
    assert "is not a folder: give a folder with one subfolder per subject" in capsys.readouterr().err


def test_the_command_module_does_not_load_the_evaluation_package() -> None:
    code = "import sys, engine.cli.evaluate; sys.exit('engine.evaluation.search' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_in_memory_index_ranks_as_comparing_every_template() -> None:
    from engine.library.index import MemoryIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 0.1, (3000, 128)).astype(np.float32)
    with MemoryIndex(IndexSettings(cell_size=64)) as index:
        index.add(np.arange(1, 3001, dtype=np.uint64), vectors)
        assert len(index.exact.centroids) > 0  # graph and cells, as a large library is searched
        for probe in vectors[:20] + 0.01:
            assert np.array_equal(index.rank(probe, 10).keys, index.nearest(probe, 10).keys)
        tie = np.vstack([vectors[5], vectors[5]])
        index.add(np.array([9001, 9000], np.uint64), tie)
        assert list(index.rank(vectors[5], 3).keys) == [6, 9000, 9001]  # equal distances: by template id
