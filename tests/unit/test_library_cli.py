"""``rfr workspace`` and ``rfr library``: the headless contract (JSON shapes, exit codes, one-line errors).

Every library command acts as a named, signed-in person (``--as``), and is recorded in the one
signed audit log. Nothing here searches a library: that is an approved case's alone. The face
engine is replaced by the deterministic synthetic one; the real engine is exercised by
tests/security/test_no_plaintext.py and tests/integration/test_case_cli.py.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from tests.synthetic import synthetic_jpeg, write_subject_folders
from tests.terminals import FAST, PASSWORD, synthetic_faces


@pytest.fixture(autouse=True)
def synthetic_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.cli.terminal.FACES", lambda config: synthetic_faces())
    monkeypatch.setattr("engine.cli.terminal.SCRYPT", FAST)
    for name in ("RFR_PASSPHRASE", "RFR_WORKSPACE", "RFR_KEY_FILE", "RFR_AUDIT_KEY_FILE", "RFR_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str, password: str | None = PASSWORD) -> tuple[int, Any, str]:
    if password is not None:
        os.environ["RFR_PASSWORD"] = password
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        payload = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        payload = out
    return code, payload, err


def init(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str) -> tuple[int, Any, str]:
    return run(
        capsys,
        "workspace",
        "init",
        str(tmp_path / "ws"),
        "--new-audit-key-file",
        str(tmp_path / "audit.key"),
        *extra,
        password=None,
    )


@pytest.fixture
def workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    code, payload, err = init(capsys, tmp_path, "--new-key-file", str(tmp_path / "k"), "--json")
    assert code == 0 and payload["key"] == "key-file", err
    assert payload["audit_key_id"] and payload["audit_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    monkeypatch.setenv("RFR_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("RFR_KEY_FILE", str(tmp_path / "k"))
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    monkeypatch.setenv("RFR_NEW_PASSWORD", PASSWORD)
    code, _, err = run(capsys, "user", "add", "eve", "--role", "engineer", password=None)
    assert code == 0, err
    return ["--json", "--as", "eve"]


def test_init_with_passphrase_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RFR_PASSPHRASE", "a long test passphrase")
    from engine.security.keys import new_key

    assert new_key.__kwdefaults__ is not None
    monkeypatch.setitem(new_key.__kwdefaults__, "scrypt_n", 2**10)  # the real cost is a second per attempt
    code, payload, err = init(capsys, tmp_path, "--json")
    assert code == 0, err
    assert payload["key"] == "scrypt" and payload["schema"]["library"] >= 1
    assert "RFR_PASSPHRASE" not in os.environ  # taken out of the environment once read: give it to each command
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    monkeypatch.setenv("RFR_NEW_PASSWORD", PASSWORD)
    monkeypatch.setenv("RFR_PASSPHRASE", "a long test passphrase")
    code, _, err = run(capsys, "user", "add", "eve", "--role", "engineer", "--workspace", str(tmp_path / "ws"))
    assert code == 0, err
    monkeypatch.setenv("RFR_PASSPHRASE", "a long test passphrase")
    code, info, err = run(capsys, "workspace", "info", "--workspace", str(tmp_path / "ws"), "--json", "--as", "eve")
    assert code == 0 and info["libraries"] == 0 and info["workspace_key"] == "passphrase", err
    monkeypatch.setenv("RFR_PASSPHRASE", "the wrong passphrase")
    code, out, err = run(capsys, "workspace", "info", "--workspace", str(tmp_path / "ws"), "--json", "--as", "eve")
    assert code == 1 and out is None
    assert err == "rfr: workspace key is wrong: check the passphrase or key file\n"


def test_secrets_are_never_accepted_in_argv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = init(capsys, tmp_path, "--passphrase", "hunter2hunter2")
    assert code == 2 and "unrecognized arguments" in err and err.count("\n") == 1


def test_no_passphrase_source_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = init(capsys, tmp_path)
    assert code == 1 and "RFR_PASSPHRASE" in err and err.count("\n") == 1
    assert not (tmp_path / "ws").exists() and not (tmp_path / "audit.key").exists()


def test_init_refuses_a_used_folder_and_keeps_no_orphan_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "x").write_text("x")
    code, _, err = init(capsys, tmp_path, "--new-key-file", str(tmp_path / "k"))
    assert code == 1 and "not empty" in err
    assert not (tmp_path / "k").exists() and not (tmp_path / "audit.key").exists()
    (tmp_path / "audit2.key").write_text("already here")
    code, _, err = run(
        capsys, "workspace", "init", str(tmp_path / "fresh"), "--new-key-file", str(tmp_path / "k2"),
        "--new-audit-key-file", str(tmp_path / "audit2.key"), password=None,
    )  # fmt: skip
    assert code == 2 and "audit2.key already exists" in err and not (tmp_path / "k2").exists()


def test_every_library_command_needs_a_named_user(workspace: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # Found (issue 14): library create|enroll|delete took no named user and were logged as os-user:root.
    for argv in (
        ["library", "create", "custody", "--kind", "substantive"],
        ["library", "list"],
        ["library", "stats"],
        ["library", "check-index"],
        ["library", "delete", "custody", "--reason", "x"],
        ["library", "enroll", "--library", "custody", "folder"],
    ):
        code, _, err = run(capsys, *argv, "--json")
        assert code == 2 and "the following arguments are required: --as" in err, argv
    code, _, err = run(capsys, "library", "search", "probe.jpg", *workspace)
    assert code == 2 and "invalid choice: 'search'" in err  # the one way to search is an approved case
    code, _, err = run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace, password="wrong")
    assert code == 1 and err == "rfr: wrong username or password\n"


def test_library_lifecycle(workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lib, _ = run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace)
    assert code == 0 and lib["name"] == "custody" and lib["templates"] == 0 and lib["created_by"] == "eve"
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    code, op, _ = run(
        capsys, "library", "create", "op", "--kind", "temporary", "--authorisation", "AUTH/1", "--expires", expires,
        *workspace,
    )  # fmt: skip
    assert code == 0 and op["authorisation"] == "AUTH/1"

    folder = tmp_path / "enrol"
    write_subject_folders(folder, {"alice": 2, "bob": 2})
    (folder / "bob" / "dark.jpg").write_bytes(synthetic_jpeg(5, 0, kind="none"))
    (tmp_path / "meta.csv").write_text("subject,sex,ic_code\nalice,F,IC1\nbob,M,IC3\n")
    code, report, _ = run(
        capsys, "library", "enroll", "--library", "custody", str(folder), "--metadata", str(tmp_path / "meta.csv"),
        *workspace,
    )  # fmt: skip
    assert code == 0
    assert report["enrolled"] == 4 and report["skipped_by_reason"] == {"no_face": 1}

    code, listing, _ = run(capsys, "library", "list", *workspace)
    assert code == 0
    assert [(lib["name"], lib["kind"], lib["images"]) for lib in listing["libraries"]] == [
        ("custody", "substantive", 4),
        ("op", "temporary", 0),
    ]
    assert listing["libraries"][0]["content_version"] == 4  # each image enrolled changed it

    code, stats, _ = run(capsys, "library", "stats", "--library", "custody", *workspace)
    assert code == 0
    fig = stats["libraries"][0]
    assert fig["subjects"]["by_sex"] == {"female": 1, "male": 1, "unknown": 0}
    assert fig["images"]["by_ic_code"]["IC1"] == 2 and fig["images"]["by_ic_code"]["IC3"] == 2

    code, verified, err = run(capsys, "audit", "verify", *workspace)
    assert code == 0 and verified["ok"], err


def test_enrol_says_in_words_which_faces_a_person_named(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace)
    folder = tmp_path / "enrol"
    write_subject_folders(folder, {"alice": 1})
    (folder / "alice" / "pair.jpg").write_bytes(synthetic_jpeg(6, 0, kind="pair"))  # two faces of a size
    (folder / "alice" / "pair2.jpg").write_bytes(synthetic_jpeg(7, 0, kind="pair"))
    (tmp_path / "meta.csv").write_text("subject,image,face_x,face_y\nalice,pair.jpg,10,10\nalice,pair2.jpg,99,10\n")
    code, text, err = run(
        capsys, "library", "enroll", "--library", "custody", str(folder), "--metadata", str(tmp_path / "meta.csv"),
        "--as", "eve",
    )  # fmt: skip
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0] == "Enrolled: 2 of 3 images into 'custody' (1 new subjects), 1 skipped."
    assert lines[1] == (
        "  0 enrolled with the clearly dominant face of several,"
        " 1 with the face named in the metadata (face_x, face_y)."
    )
    assert lines[2].endswith(
        "pair2.jpg: the point named (face_x 99, face_y 10) is outside the photograph, which is 64x64 pixels as"
        " displayed (2 faces found): give the point in pixels from its left and top"
    )


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
    code, text, _ = run(capsys, "library", "check-index", "--as", "eve", "--queries", "3", "--top", "2")
    assert code == 0 and "custody: 8 templates; index profile speed (connectivity 32" in text
    assert "recall@2 1.0000 over 3 of its templates (lowest 1.00, 0 under half)" in text
    assert "search expansion 64 (the profile's)" in text  # 8 templates: too few to measure by itself

    # --tune: the smallest expansion reaching the target is kept, and later commands search with it
    code, result, _ = run(capsys, "library", "check-index", "--tune", *workspace)
    tuned = result["tunings"][0]
    assert code == 0 and tuned["library"] == "custody" and tuned["reached"] is True and tuned["target"] == 0.995
    assert tuned["expansion_search"] == 64 and [t["expansion_search"] for t in tuned["trials"]] == [64]
    code, text, _ = run(capsys, "library", "check-index", "--tune", "--target", "0.9", "--as", "eve")
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
    monkeypatch.setenv("RFR_INDEX_PROFILE", "fastest")
    code, _, err = run(capsys, "library", "check-index", "--library", "custody", *workspace)
    assert (
        code == 1
        and err == "rfr: RFR_INDEX_PROFILE is 'fastest', not an index profile: set it to one of recall, speed\n"
    )
    monkeypatch.delenv("RFR_INDEX_PROFILE")

    code, _, err = run(capsys, "library", "check-index", "--library", "empty", *workspace)
    assert code == 1 and "library 'empty' has no templates" in err and err.count("\n") == 1
    bad_flags = (["--top", "0"], ["--top", "1000"], ["--queries", "0"], ["--tune", "--target", "2"], ["--target", ".9"])
    for bad in bad_flags:
        code, _, err = run(capsys, "library", "check-index", *bad, *workspace)
        assert code == 2 and err.count("\n") == 1
    code, verified, _ = run(capsys, "audit", "verify", *workspace)
    assert code == 0 and verified["ok"]  # every measurement was recorded in the signed log


def test_missing_workspace_and_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "library", "list", "--json", "--as", "eve")
    assert code == 1 and "no workspace configured" in err and "--workspace DIR" in err
    init(capsys, tmp_path, "--new-key-file", str(tmp_path / "k"))
    code, _, err = run(capsys, "library", "list", "--workspace", str(tmp_path / "ws"), "--as", "eve")
    assert code == 1 and "no audit signing key file configured" in err and err.count("\n") == 1
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    code, _, err = run(capsys, "library", "list", "--workspace", str(tmp_path / "ws"), "--as", "eve")
    assert code == 1 and "--key-file" in err and err.count("\n") == 1
    (tmp_path / "x").mkdir()
    init(capsys, tmp_path / "x", "--new-key-file", str(tmp_path / "k3"))  # another terminal's audit key
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(tmp_path / "x" / "audit.key"))
    code, _, err = run(
        capsys, "library", "list", "--workspace", str(tmp_path / "ws"), "--key-file", str(tmp_path / "k"), "--as", "eve"
    )
    assert code == 1 and "the audit signing key file does not belong to this workspace" in err, err


def test_a_key_file_that_is_a_fifo_or_a_link_is_refused_without_hanging(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found: a key file or --public-key that is a FIFO hung the command.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "k")
    for variable, path, message in (
        ("RFR_KEY_FILE", fifo, "is not a regular file"),
        ("RFR_AUDIT_KEY_FILE", fifo, "is not a regular file"),
        ("RFR_KEY_FILE", link, "symbolic link"),
    ):
        saved = os.environ[variable]
        monkeypatch.setenv(variable, str(path))
        code, _, err = run(capsys, "library", "list", *workspace)
        assert code == 1 and message in err and err.count("\n") == 1, (variable, err)
        monkeypatch.setenv(variable, saved)
    code, _, err = run(capsys, "audit", "verify", "--public-key", str(fifo), *workspace)
    assert code == 1 and "is not a regular file" in err


def test_lapsed_library_is_purged_on_the_next_command(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    run(
        capsys, "library", "create", "op", "--kind", "temporary", "--authorisation", "AUTH/7", "--expires", tomorrow,
        *workspace,
    )  # fmt: skip
    write_subject_folders(tmp_path / "enrol", {"x": 2})
    run(capsys, "library", "enroll", "--library", "op", str(tmp_path / "enrol"), *workspace)
    later = datetime.now(UTC) + timedelta(days=3)
    monkeypatch.setattr("engine.workspace.utc_now", lambda: later)
    code, listing, err = run(capsys, "library", "list", *workspace)
    assert code == 0 and listing["libraries"] == []
    assert "temporary library 'op' destroyed: authorisation AUTH/7 lapsed" in err


def test_delete_is_by_a_named_engineer_with_a_reason(
    workspace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "library", "create", "custody", "--kind", "substantive", *workspace)
    write_subject_folders(tmp_path / "enrol", {"x": 2})
    run(capsys, "library", "enroll", "--library", "custody", str(tmp_path / "enrol"), *workspace)
    code, _, err = run(capsys, "library", "delete", "custody", *workspace)
    assert code == 2 and "--reason" in err  # the reason is recorded, so it is required
    code, deleted, _ = run(capsys, "library", "delete", "custody", "--reason", "retention review", *workspace)
    assert code == 0 and deleted["deleted"]["images"] == 2
    code, _, err = run(capsys, "library", "purge-expired", *workspace)
    assert code == 2 and "invalid choice" in err  # the terminal's retention sweep does it at every start
