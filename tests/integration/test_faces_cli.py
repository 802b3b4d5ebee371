"""``rfr faces detect|embed|compare`` end to end on real photographs, through the console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def examples(data_root: Path) -> Path:
    return data_root / "examples" / "face_recognition" / "examples"


def test_detect_json_shape(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    code, out, err = run(capsys, "faces", "detect", str(examples / "two_people.jpg"), "--device", "CPU", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["device"] == "CPU"
    (image,) = doc["images"]
    assert image["path"].endswith("two_people.jpg") and len(image["faces"]) == 2
    for face in image["faces"]:
        left, top, right, bottom = face["box"]
        assert 0 <= left < right < 1126 and 0 <= top < bottom < 661
        assert len(face["landmarks"]) == 5 and all(left - 5 <= x <= right + 5 for x, _ in face["landmarks"])
        assert face["confidence"] > 0 and "embedding" not in face
        assert {"inter_eye_distance", "sharpness", "yaw", "warnings"} <= face["quality"].keys()


def test_embed_gives_128_floats_and_the_same_person_is_close(
    capsys: pytest.CaptureFixture[str], examples: Path
) -> None:
    code, out, _ = run(
        capsys,
        "faces",
        "embed",
        str(examples / "obama.jpg"),
        str(examples / "obama2.jpg"),
        str(examples / "biden.jpg"),
        "--json",
    )
    assert code == 0
    vecs = [np.array(img["faces"][0]["embedding"]) for img in json.loads(out)["images"]]
    assert all(v.shape == (128,) for v in vecs)
    assert np.linalg.norm(vecs[0] - vecs[1]) < 0.5 < np.linalg.norm(vecs[0] - vecs[2])


def test_an_unreadable_image_is_reported_beside_the_good_ones(
    capsys: pytest.CaptureFixture[str], examples: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((examples / "obama.jpg").read_bytes()[:5000])
    code, out, _ = run(capsys, "faces", "detect", str(bad), str(examples / "obama.jpg"), "--json")
    assert code != 0
    first, second = json.loads(out)["images"]
    assert "faces" not in first and "truncated" in first["error"]
    assert len(second["faces"]) == 1


def test_no_face_is_an_empty_list_not_an_error(capsys: pytest.CaptureFixture[str], data_root: Path) -> None:
    code, out, _ = run(capsys, "faces", "detect", str(data_root / "examples/dlib/faces/dogs.jpg"), "--json")
    assert code == 0 and json.loads(out)["images"][0]["faces"] == []


def test_upsampling_finds_the_small_face(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    path = str(examples / "obama-240p.jpg")
    assert json.loads(run(capsys, "faces", "detect", path, "--json")[1])["images"][0]["faces"] == []
    assert (
        len(json.loads(run(capsys, "faces", "detect", path, "--upsample", "1", "--json")[1])["images"][0]["faces"]) == 1
    )


def test_compare_states_the_calibrated_meaning(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    code, out, _ = run(capsys, "faces", "compare", str(examples / "obama.jpg"), str(examples / "obama2.jpg"), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["score_display"] == "similarity"  # the shipped policy's score_display
    assert doc["score"]["within_operating_threshold"] is True and isinstance(doc["score"]["score"], float)
    assert "distance" not in doc["score"] and doc["score"]["calibration"].startswith("lfw-")
    assert "intelligence lead only" in doc["note"]
    code, out, _ = run(capsys, "faces", "compare", str(examples / "obama.jpg"), str(examples / "biden.jpg"))
    assert code == 0 and "outside the operating threshold" in out and "never evidence" in out
    assert out.startswith("similarity ") and "not a probability" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["faces", "detect", "/nonexistent/probe.jpg"], "probe.jpg"),
        (["faces", "detect", "IMG", "--device", "TPU"], "unknown inference device 'TPU'"),
        (["faces", "detect", "IMG", "--upsample", "9"], "upsample must be between 0 and 3"),
        (["faces", "compare", "IMG", "DOGS"], "no face found in"),
        (["faces", "frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], examples: Path, data_root: Path, argv: list[str], message: str
) -> None:
    subst = {"IMG": str(examples / "obama.jpg"), "DOGS": str(data_root / "examples/dlib/faces/dogs.jpg")}
    code, _, err = run(capsys, *[subst.get(a, a) for a in argv])
    assert code != 0
    assert message in err and err.startswith("rfr: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
