"""``rfr workspace`` and ``rfr library``: the headless contract (JSON shapes, exit codes, one-line errors).

The face engine is replaced by the deterministic synthetic one; the real engine is exercised by
tests/security/test_no_plaintext.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.library.synthetic import SyntheticFaceEngine, load_rgb_with_opencv, synthetic_jpeg, write_subject_folders


@pytest.fixture(autouse=True)
def synthetic_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.cli.library.face_tools", lambda device: (SyntheticFaceEngine(), load_rgb_with_opencv))
    engine = SyntheticFaceEngine()
    monkeypatch.setattr("engine.cli.library.face_model", lambda: (engine.model_id, engine.model_sha256))
    monkeypatch.delenv("RFR_PASSPHRASE", raising=False)
    monkeypatch.delenv("RFR_WORKSPACE", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        payload = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        payload = out
    return code, payload, err


@pytest.fixture
def workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    code, payload, _ = run(
        capsys, "workspace", "init", str(tmp_path / "ws"), "--new-key-file", str(tmp_path / "k"), "--json"
    )
    assert code == 0 and payload["key"] == "key-file"
    monkeypatch.setenv("RFR_WORKSPACE", str(tmp_path / "ws"))
    return ["--key-file", str(tmp_path / "k"), "--json"]


def test_init_with_passphrase_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RFR_PASSPHRASE", "a long test passphrase")
    from engine.security.keys import new_key

    assert new_key.__kwdefaults__ is not None
    monkeypatch.setitem(new_key.__kwdefaults__, "scrypt_n", 2**10)  # the real cost is a second per attempt
    code, payload, err = run(capsys, "workspace", "init", str(tmp_path / "ws"), "--json")
    assert code == 0, err
    assert payload["key"] == "scrypt" and payload["schema"]["library"] >= 1
    code, info, _ = run(capsys, "workspace", "info", "--workspace", str(tmp_path / "ws"), "--json")
    assert code == 0 and info["libraries"] == 0
    monkeypatch.setenv("RFR_PASSPHRASE", "the wrong passphrase")
    code, out, err = run(capsys, "workspace", "info", "--workspace", str(tmp_path / "ws"), "--json")
    assert code == 1 and out is None
    assert err == "rfr: workspace key is wrong: check the passphrase or key file\n"


def test_secrets_are_never_accepted_in_argv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "workspace", "init", str(tmp_path / "ws"), "--passphrase", "hunter2hunter2")
    assert code == 2 and "unrecognized arguments" in err and err.count("\n") == 1


def test_no_passphrase_source_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run(capsys, "workspace", "init", str(tmp_path / "ws"))
    assert code == 1 and "RFR_PASSPHRASE" in err and err.count("\n") == 1
    assert not (tmp_path / "ws").exists()


def test_init_refuses_a_used_folder_and_keeps_no_orphan_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "x").write_text("x")
    code, _, err = run(capsys, "workspace", "init", str(tmp_path / "ws"), "--new-key-file", str(tmp_path / "k"))
    assert code == 1 and "not empty" in err
    assert not (tmp_path / "k").exists()


def test_library_lifecycle(workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lib, _ = run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace)
    assert code == 0 and lib["name"] == "custody" and lib["templates"] == 0
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    code, op, _ = run(
        capsys,
        "library",
        "create",
        "op",
        "--kind",
        "temporary",
        "--authorisation",
        "AUTH/1",
        "--expires",
        expires,
        *workspace,
    )
    assert code == 0 and op["authorisation"] == "AUTH/1"

    folder = tmp_path / "enrol"
    write_subject_folders(folder, {"alice": 2, "bob": 2})
    (folder / "bob" / "dark.jpg").write_bytes(synthetic_jpeg(5, 0, kind="none"))
    (tmp_path / "meta.csv").write_text("subject,sex,ic_code\nalice,F,IC1\nbob,M,IC3\n")
    code, report, _ = run(
        capsys,
        "library",
        "enroll",
        "--library",
        "custody",
        str(folder),
        "--metadata",
        str(tmp_path / "meta.csv"),
        *workspace,
    )
    assert code == 0
    assert report["enrolled"] == 4 and report["skipped_by_reason"] == {"no_face": 1}

    code, listing, _ = run(capsys, "library", "list", *workspace)
    assert code == 0
    assert [(lib["name"], lib["kind"], lib["images"]) for lib in listing["libraries"]] == [
        ("custody", "substantive", 4),
        ("op", "temporary", 0),
    ]

    code, stats, _ = run(capsys, "library", "stats", "--library", "custody", *workspace)
    assert code == 0
    fig = stats["libraries"][0]
    assert fig["subjects"]["by_sex"] == {"female": 1, "male": 1, "unknown": 0}
    assert fig["images"]["by_ic_code"]["IC1"] == 2 and fig["images"]["by_ic_code"]["IC3"] == 2

    probe = tmp_path / "probe.jpg"
    probe.write_bytes(synthetic_jpeg(0, 42))  # alice's pattern (first subject, seed 0)
    code, result, err = run(capsys, "library", "search", str(probe), "--library", "custody", "--top", "3", *workspace)
    assert code == 0, err
    assert set(result) >= {"probes"} and len(result["probes"]) == 1
    candidates = result["probes"][0]["candidates"]
    assert result["probes"][0]["path"] == str(probe)
    assert [c["rank"] for c in candidates] == [1, 2, 3]
    assert set(candidates[0]) == {
        "rank",
        "score",
        "distance",
        "subject",
        "image_id",
        "library",
        "estimated_false_match_rate",
        "false_match_rate_upper_bound",
        "meaning",
        "within_operating_threshold",
    }
    # The synthetic engine has no calibration: said so, never another model's rates.
    assert result["scoring"]["calibrated"] is False
    assert candidates[0]["meaning"].startswith("uncalibrated") and candidates[0]["estimated_false_match_rate"] is None
    assert candidates[0]["subject"] == "alice" and candidates[0]["library"] == "custody"
    assert isinstance(candidates[0]["image_id"], str)
    assert candidates[0]["distance"] <= candidates[1]["distance"] <= candidates[2]["distance"]
    assert "intelligence leads only" in result["notice"]


def test_search_refusals(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace)
    run(capsys, "library", "create", "empty", "--kind", "substantive", *workspace)
    write_subject_folders(tmp_path / "enrol", {"alice": 2})
    run(capsys, "library", "enroll", "--library", "custody", str(tmp_path / "enrol"), *workspace)
    probe = tmp_path / "p.jpg"
    probe.write_bytes(synthetic_jpeg(0, 1))
    dark = tmp_path / "dark.jpg"
    dark.write_bytes(synthetic_jpeg(0, 1, kind="none"))

    code, _, err = run(capsys, "library", "search", str(probe), "--library", "nope", *workspace)
    assert code == 1 and err == "rfr: no library called 'nope' (libraries: custody, empty)\n"
    code, _, err = run(capsys, "library", "search", str(probe), "--library", "empty", *workspace)
    assert code == 1 and "library 'empty' is empty" in err and err.count("\n") == 1
    code, result, err = run(capsys, "library", "search", str(dark), str(probe), "--library", "custody", *workspace)
    assert code == 1 and "no face found" in err
    assert result["probes"][0]["candidates"] == [] and "no face" in result["probes"][0]["error"]
    assert result["probes"][1]["candidates"][0]["subject"] == "alice"
    code, result, _ = run(capsys, "library", "search", str(probe), *workspace)  # default: every non-empty library
    assert code == 0 and result["libraries"] == ["custody"]
    code, _, err = run(capsys, "library", "search", str(probe), "--top", "0", *workspace)
    assert code == 2
    monkeypatch.setenv("RFR_INDEX_PROFILE", "fastest")
    code, _, err = run(capsys, "library", "search", str(probe), "--library", "custody", *workspace)
    assert code == 1 and err.count("\n") == 1
    assert err == "rfr: RFR_INDEX_PROFILE is 'fastest', not an index profile: set it to one of recall, speed\n"
    monkeypatch.setenv("RFR_INDEX_PROFILE", "recall")
    code, result, _ = run(capsys, "library", "search", str(probe), "--library", "custody", *workspace)
    assert code == 0 and result["probes"][0]["candidates"][0]["subject"] == "alice"


def test_check_index_measures_recall_and_search_time_on_this_terminal(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace)
    run(capsys, "library", "create", "empty", "--kind", "substantive", *workspace)
    write_subject_folders(tmp_path / "enrol", {"alice": 3, "bob": 3, "carol": 2})
    run(capsys, "library", "enroll", "--library", "custody", str(tmp_path / "enrol"), *workspace)

    code, result, _ = run(capsys, "library", "check-index", *workspace)  # default: every library with templates
    assert code == 0 and [c["library"] for c in result["libraries"]] == ["custody"]
    check = result["libraries"][0]
    assert (check["templates"], check["queries"], check["top_k"]) == (8, 8, 7)  # K is at most the others
    assert check["recall"] == 1.0 and check["below_half"] == 0 and check["search_p50_ms"] > 0
    assert check["profile"] == "speed" and check["settings"]["expansion_search"] == 64
    code, text, _ = run(capsys, "library", "check-index", "--key-file", workspace[1], "--queries", "3", "--top", "2")
    assert code == 0 and "custody: 8 templates; index profile speed (connectivity 32" in text
    assert "recall@2 1.0000 over 3 of its templates (lowest 1.00, 0 under half)" in text
    assert "search expansion 64 (the profile's)" in text  # 8 templates: too few to measure by itself

    # --tune: the smallest expansion reaching the target is kept, and later commands search with it
    code, result, _ = run(capsys, "library", "check-index", "--tune", *workspace)
    tuned = result["tunings"][0]
    assert code == 0 and tuned["library"] == "custody" and tuned["reached"] is True and tuned["target"] == 0.995
    assert tuned["expansion_search"] == 64 and [t["expansion_search"] for t in tuned["trials"]] == [64]
    code, text, _ = run(capsys, "library", "check-index", "--tune", "--target", "0.9", "--key-file", workspace[1])
    assert code == 0 and "kept: search expansion 64, which reaches the target 0.9" in text
    code, result, _ = run(capsys, "library", "check-index", *workspace)
    assert result["libraries"][0]["expansion_search"] == 64
    assert result["libraries"][0]["expansion_source"].startswith("measured ")

    monkeypatch.setenv("RFR_INDEX_PROFILE", "recall")  # built otherwise: the measured expansion does not apply
    code, result, _ = run(capsys, "library", "check-index", "--library", "custody", *workspace)
    assert code == 0 and result["libraries"][0]["profile"] == "recall"
    assert result["libraries"][0]["settings"]["cells_probed"] == 8
    assert result["libraries"][0]["expansion_search"] == 512
    assert result["libraries"][0]["expansion_source"] == "the profile's"

    code, _, err = run(capsys, "library", "check-index", "--library", "empty", *workspace)
    assert code == 1 and "library 'empty' is empty" in err and err.count("\n") == 1
    bad_flags = (["--top", "0"], ["--top", "1000"], ["--queries", "0"], ["--tune", "--target", "2"], ["--target", ".9"])
    for bad in bad_flags:
        code, _, err = run(capsys, "library", "check-index", *bad, *workspace)
        assert code == 2 and err.count("\n") == 1


def test_missing_workspace_and_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "library", "list", "--json")
    assert code == 2 and "--workspace" in err
    run(capsys, "workspace", "init", str(tmp_path / "ws"), "--new-key-file", str(tmp_path / "k"))
    code, _, err = run(capsys, "library", "list", "--workspace", str(tmp_path / "ws"))
    assert code == 1 and "--key-file" in err and err.count("\n") == 1


def test_lapsed_library_is_purged_on_the_next_command(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    run(
        capsys,
        "library",
        "create",
        "op",
        "--kind",
        "temporary",
        "--authorisation",
        "AUTH/7",
        "--expires",
        tomorrow,
        *workspace,
    )
    write_subject_folders(tmp_path / "enrol", {"x": 2})
    run(capsys, "library", "enroll", "--library", "op", str(tmp_path / "enrol"), *workspace)
    later = datetime.now(UTC) + timedelta(days=3)
    monkeypatch.setattr("engine.workspace.utc_now", lambda: later)
    code, listing, err = run(capsys, "library", "list", *workspace)
    assert code == 0 and listing["libraries"] == []
    assert "temporary library 'op' destroyed: authorisation AUTH/7 lapsed" in err


def test_delete_and_purge_commands(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace)
    write_subject_folders(tmp_path / "enrol", {"x": 2})
    run(capsys, "library", "enroll", "--library", "custody", str(tmp_path / "enrol"), *workspace)
    code, _, err = run(capsys, "library", "delete", "custody", *workspace)
    assert code == 2 and "--reason" in err  # the reason is recorded, so it is required
    code, deleted, _ = run(capsys, "library", "delete", "custody", "--reason", "retention review", *workspace)
    assert code == 0 and deleted["deleted"]["images"] == 2
    code, purged, _ = run(capsys, "library", "purge-expired", *workspace)
    assert code == 0 and purged == {"purged": []}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    run(
        capsys,
        "library",
        "create",
        "op",
        "--kind",
        "temporary",
        "--authorisation",
        "A/1",
        "--expires",
        tomorrow,
        *workspace,
    )
    later = datetime.now(UTC) + timedelta(days=3)
    monkeypatch.setattr("engine.workspace.utc_now", lambda: later)
    code, purged, _ = run(capsys, "library", "purge-expired", *workspace)
    assert code == 0 and [p["library"] for p in purged["purged"]] == ["op"]
