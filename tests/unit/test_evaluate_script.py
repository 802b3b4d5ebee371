"""scripts/evaluate.py end to end on a few LFW people: outputs written last, the threshold read, never half a run."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from engine.evaluation.calibration import SetScores, build_calibration
from engine.faces.pipeline import model_identity
from engine.policy import load_default_policy
from engine.scoring.calibration import derive_threshold, load_calibration

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("evaluate_script", REPO / "scripts" / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["evaluate_script"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A format-2 calibration for this model build, from synthetic distances (the installed one is not touched)."""
    model_id, sha = model_identity()
    rng = np.random.default_rng(0)

    def scores() -> SetScores:
        return SetScores(rng.normal(0.38, 0.07, 5_000), rng.normal(0.85, 0.1, 200_000), 500, 1500, "synthetic")

    cal = build_calibration(
        scores(),
        scores(),
        model_id=model_id,
        model_sha256=sha,
        dataset="synthetic",
        created_by="tests/unit/test_evaluate_script.py",
        images_without_face=0,
        excluded_label_errors=0,
    )
    path = tmp_path_factory.mktemp("cal") / "calibration.yaml"
    cal.write(path)
    return path


@pytest.fixture(scope="module")
def small_run(
    script: ModuleType, calibration_file: Path, tmp_path_factory: pytest.TempPathFactory, data_root: Path
) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("ev") / "evaluation"
    argv = ["--data-root", str(data_root), "--limit", "90", "--n-boot", "20", "--out-dir", str(out)]
    code = script.main([*argv, "--calibration", str(calibration_file)])
    return code, out


def test_a_small_run_writes_every_output(small_run: tuple[int, Path], calibration_file: Path) -> None:
    code, out = small_run
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"figures.json", "evaluation.md", "fmr_within.png", "fnmr.png", "fpir.png", "ratios.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    j = json.loads((out / "figures.json").read_text(encoding="utf-8"))
    # The operating threshold is read at run time: the calibration's, at the policy's target.
    target = load_default_policy().operating_point.target_false_match_rate
    expected = derive_threshold(load_calibration(calibration_file), target)
    assert j["operating_point"]["threshold"] == expected
    assert j["thresholds"][j["operating_index"]] == pytest.approx(expected)
    assert j["thresholds"][0] == 0.40 and 0.62 in j["thresholds"]
    assert set(j["label_sets"]) == {"sex_hand", "sex_auto", "race_hand", "race_auto"}
    for ls in j["label_sets"].values():
        for figs in ls["sweep"]["fmr_within"].values():
            assert len(figs) == len(j["thresholds"])
            for f in figs:  # the rule of 30, in the file as on the page
                assert f["stated"] == (f["errors"] >= 30 and f["people"] >= 30 and f["trials"] > 0)
    q = {x["group"]: x for x in j["label_sets"]["race_auto"]["quality_against_hand_labels"]}
    assert q["Asian"]["precision_counts"] == [12, 20] and q["Indian"]["precision_counts"] == [3, 8]
    c = j["one_to_n"]["construction"]
    assert (
        c["enrolled_people"] + c["never_enrolled_people"] == c["people"] == j["data"]["halves"]["statement"]["people"]
    )
    page = (out / "evaluation.md").read_text(encoding="utf-8")
    assert "## Equity at the operating threshold" in page and "(the lowest this evaluation can show)" in page
    assert "![Within-group FMR by group across thresholds](./fmr_within.png)" in page


def test_bad_input_fails_before_anything_is_written(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], calibration_file: Path
) -> None:
    out = tmp_path / "out"
    code = script.main(["--data-root", str(tmp_path), "--out-dir", str(out), "--calibration", str(calibration_file)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "RFR_DATA" in err[-1]
    assert not out.exists()


def test_a_bad_calibration_is_refused_before_anything_is_written(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_root: Path
) -> None:
    bad = tmp_path / "calibration.yaml"
    bad.write_text("format: 1\n", encoding="utf-8")
    out = tmp_path / "out"
    assert script.main(["--data-root", str(data_root), "--out-dir", str(out), "--calibration", str(bad)]) == 2
    assert "error: calibration" in capsys.readouterr().err
    assert not out.exists()


def test_the_force_pairs_run_the_same_evaluation(
    script: ModuleType, tmp_path: Path, data_root: Path, calibration_file: Path
) -> None:
    images = data_root / "lfw" / "images"
    people = ["Aaron_Peirsol", "Abdullah_Gul", "Abid_Hamid_Mahmud_Al-Tikriti", "Adam_Sandler"]
    lines = [",".join(("pair_kind", "image_a", "image_b", "same", "subject_a", "subject_b", "sex_a", "sex_b"))]
    lines[0] += ",ic_code_a,ic_code_b,age_range_a,age_range_b"
    for k, p in enumerate(people):
        a, b = images / p / f"{p}_0001.jpg", images / p / f"{p}_0002.jpg"
        lines.append(f"custody-custody,{a},{b},same,S{k},S{k},M,M,IC1,IC1,35-44,35-44")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "force"
    code = script.main(
        [
            "--force-pairs",
            str(manifest),
            "--out-dir",
            str(out),
            "--n-boot",
            "20",
            "--calibration",
            str(calibration_file),
        ]
    )
    assert code == 0
    j = json.loads((out / "force_figures.json").read_text(encoding="utf-8"))
    kind = j["kinds"]["custody-custody"]
    assert kind["pairs"]["genuine_pairs"] + kind["pairs"]["genuine_pairs_without_face"] == 4
    assert kind["pairs"]["matched_impostor_pairs_added"] == 28 - 4  # every pair of the 8 images but the 4 genuine
    assert "## custody-custody" in (out / "force_evaluation.md").read_text(encoding="utf-8")


def test_by_default_the_threshold_is_the_terminals(script: ModuleType, tmp_path: Path, data_root: Path) -> None:
    """Without --calibration: the installed, manifest-pinned calibration at the policy's target, as the terminal."""
    args = argparse.Namespace(data_root=data_root, force_pairs=None, out_dir=tmp_path / "out", calibration=None)
    inputs = script.preflight(args)
    point = load_default_policy().operating_point
    assert inputs.calibration.reference == point.calibration_id
    assert inputs.threshold == point.threshold
    assert not (tmp_path / "out").exists()  # preflight writes nothing
