"""No plaintext at rest: nothing biometric or personal is readable in the workspace or the temp folder.

Real LFW photographs are enrolled, and searched in approved cases, with the real face engine
through the real ``rfr`` commands (separate processes with their own temporary folder), the
workspace is closed, and every byte of every file in the workspace and in that temporary folder is scanned
for JPEG and PNG headers and slices of the photographs, the stored templates (whole and in pieces), the probe templates,
and the subjects' names. A positive control shows the scan finds all of these in plaintext.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.policy import load_default_policy
from engine.security.keys import read_key_file
from engine.workspace import Workspace
from tests.plaintext import image_needles

REPO = Path(__file__).resolve().parents[2]
PEOPLE = 5
IMAGES_EACH = 3

pytestmark = pytest.mark.slow


PASSWORD = "correct horse battery"
FIRST = "a first password an engineer set"
SEARCHED = 2  # probes searched in approved cases (each case is four commands with the real engine)
CHECKS = [
    arg
    for key, status in (
        ("local_intelligence", "exhausted"),
        ("circulation", "exhausted"),
        ("other_enquiries", "exhausted"),
        ("biometric_identification", "unviable"),
    )
    for arg in ("--check", key, status, "Done as the force's procedure asks, without result")
]


def rfr(
    env: dict[str, str], *args: str, password: str | None = PASSWORD, new_password: str | None = None
) -> subprocess.CompletedProcess[str]:
    secrets = {"RFR_PASSWORD": password, "RFR_NEW_PASSWORD": new_password}
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        env={**env, **{k: v for k, v in secrets.items() if v is not None}},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result


def add_person(env: dict[str, str], name: str, *role_and_rank: str) -> None:
    asked = rfr(env, "user", "add", name, *role_and_rank, "--as", "eve", "--json")
    assert asked.returncode == 0, asked.stderr
    request = str(json.loads(asked.stdout)["request"])
    assert rfr(env, "user", "confirm", request, "--as", "ed", new_password=FIRST).returncode == 0
    assert rfr(env, "user", "passwd", name, password=FIRST, new_password=PASSWORD).returncode == 0


def needles_for(names: list[str], templates: list[bytes], images: list[bytes]) -> dict[str, bytes]:
    needles = image_needles(images)
    for name in names:
        needles[f"subject name {name}"] = name.encode()
        needles[f"subject name {name} with spaces"] = name.replace("_", " ").encode()
    for i, blob in enumerate(templates):
        needles[f"template {i}"] = blob
        for offset in (0, 200, 496):  # any 16 bytes of a template (4 floats) would be a leak too
            needles[f"template {i} bytes {offset}..{offset + 16}"] = blob[offset : offset + 16]
    return needles


def scan(folders: list[Path], needles: dict[str, bytes]) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{what} in {path}" for what, needle in needles.items() if needle in data]
    return found


@pytest.fixture(scope="module")
def people(data_root: Path) -> list[tuple[str, list[Path]]]:
    lfw = data_root / "lfw" / "images"
    chosen = []
    for folder in sorted(lfw.iterdir()):
        images = sorted(folder.glob("*.jpg"))
        if len(images) >= IMAGES_EACH + 1:
            chosen.append((folder.name, images[: IMAGES_EACH + 1]))
        if len(chosen) == PEOPLE:
            break
    return chosen


def test_nothing_readable_at_rest(tmp_path: Path, people: list[tuple[str, list[Path]]]) -> None:
    source, temp, ws_dir, key_file = tmp_path / "source", tmp_path / "tmp", tmp_path / "ws", tmp_path / "key"
    temp.mkdir()
    probes = []
    for name, images in people:
        (source / name).mkdir(parents=True)
        for image in images[:IMAGES_EACH]:
            (source / name / image.name).write_bytes(image.read_bytes())
        probes.append(images[IMAGES_EACH])  # held out: searched, never enrolled
    env = {
        **os.environ,
        "TMPDIR": str(temp),
        "TMP": str(temp),
        "TEMP": str(temp),
        "RFR_WORKSPACE": str(ws_dir),
        "RFR_KEY_FILE": str(key_file),
        "RFR_AUDIT_KEY_FILE": str(tmp_path / "audit.key"),
    }
    env.pop("RFR_PASSPHRASE", None)
    init = ["workspace", "init", str(ws_dir), "--new-key-file", str(key_file)]
    assert rfr(env, *init, "--new-audit-key-file", str(tmp_path / "audit.key")).returncode == 0
    assert rfr(env, "user", "add", "eve", "--role", "engineer", new_password=PASSWORD).returncode == 0
    assert rfr(env, "user", "add", "ed", "--role", "engineer", "--as", "eve", new_password=FIRST).returncode == 0
    assert rfr(env, "user", "passwd", "ed", password=FIRST, new_password=PASSWORD).returncode == 0
    add_person(env, "alice", "--role", "rfr_user", "--rank", "Constable")
    add_person(env, "ivan", "--role", "approver", "--rank", "Inspector")
    assert rfr(env, "library", "create", "custody", "--kind", "substantive", "--as", "eve").returncode == 0
    enrolled = rfr(env, "library", "enroll", "--library", "custody", str(source), "--as", "eve", "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    report = json.loads(enrolled.stdout)
    assert report["enrolled"] >= PEOPLE * IMAGES_EACH - 3, report  # an LFW image may show a second face
    hits = 0
    for probe, (name, _) in zip(probes[:SEARCHED], people, strict=False):
        form = ["--use-case", "identify_unknown_subject", "--reference", "OCC/1", "--offence", "robbery",
                "--justification", "Identify the robber; every other line of enquiry is now exhausted.", *CHECKS,
                "--probe-source", "police", "--captured", "2025-01-01", "--obtained", "From the shop CCTV by PC 1",
                "--age-band", "adult", "--library", "custody", "--probe", str(probe)]  # fmt: skip
        made = rfr(env, "case", "new", *form, "--as", "alice", "--json")
        assert made.returncode == 0, made.stderr
        case = json.loads(made.stdout)["case"]
        assert rfr(env, "case", "submit", case, "--as", "alice").returncode == 0
        assert rfr(env, "case", "approve", case, "--reason", "proportionate", "--as", "ivan").returncode == 0
        searched = rfr(env, "case", "search", case, "--as", "alice", "--json")
        assert searched.returncode == 0, searched.stderr
        payload = json.loads(searched.stdout)
        candidates = payload["probes"][0]["candidates"]
        hits += candidates[0]["subject"] == name  # the searches were real searches
        # ... and every score is shown as the policy says (similarity), with the versions that reproduce it.
        point = load_default_policy().operating_point
        assert payload["scoring"]["calibrated"] is True and payload["scoring"]["calibration"] == point.calibration_id
        assert (
            payload["scoring"]["threshold"] == point.threshold and payload["scoring"]["score_display"] == "similarity"
        )
        assert payload["scoring"]["equity_caveat"].startswith("Equity caveat: at the operating threshold")
        for c in candidates:
            assert "distance" not in c and "meaning" not in c and isinstance(c["score"], float)
            assert isinstance(c["within_operating_threshold"], bool)
    assert hits >= SEARCHED - 1
    assert rfr(env, "library", "stats", "--as", "eve").returncode == 0

    with Workspace.open(ws_dir, read_key_file(key_file)) as ws:
        templates = [bytes(r[0]) for r in ws.query("SELECT vector FROM templates")]
        names = [r[0] for r in ws.query("SELECT reference FROM subjects")]
    assert len(templates) == report["enrolled"] and sorted(names) == sorted(n for n, _ in people)
    probe_templates = _probe_templates(probes[:SEARCHED])

    images = [image.read_bytes() for _, chosen in people for image in chosen]
    needles = needles_for(names + [p.name for p in probes], templates + probe_templates, images)
    files = [p for folder in (ws_dir, temp) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "rfr.db" for p in files) and any(p.suffix == ".rfridx" for p in files)
    assert scan([ws_dir, temp], needles) == []


def _probe_templates(probes: list[Path]) -> list[bytes]:
    from engine.faces.image_io import load_image
    from engine.faces.pipeline import FaceEngine, largest_face

    engine = FaceEngine.open(device="CPU")
    out = []
    for path in probes:
        face = largest_face(engine.analyze(load_image(path).rgb, upsample=0, embed=True))
        assert face is not None and face.embedding is not None
        out.append(np.asarray(face.embedding, dtype="<f4").tobytes())
    return out


def test_the_scan_finds_plaintext(tmp_path: Path, people: list[tuple[str, list[Path]]]) -> None:
    """Positive control: the same data in an unencrypted database and folder is found."""
    name, images = people[0]
    template = np.linspace(-0.2, 0.2, 128, dtype="<f4").tobytes()
    db = sqlite3.connect(tmp_path / "plain.db")
    db.execute("CREATE TABLE t (name TEXT, image BLOB, vector BLOB)")
    db.execute("INSERT INTO t VALUES (?, ?, ?)", (name, images[0].read_bytes(), template))
    db.commit()
    db.close()
    found = scan([tmp_path], needles_for([name], [template], [images[0].read_bytes()]))
    assert any(f.startswith("JPEG JFIF header") for f in found)
    assert any(f.startswith("image 0 first 32 bytes") for f in found)
    assert any(f.startswith("image 0 bytes ") for f in found)
    assert any(f.startswith(f"subject name {name} in") for f in found)
    assert any(f.startswith("template 0 in") for f in found)
    assert any(f.startswith("template 0 bytes 200..216") for f in found)


def test_the_scan_does_not_mistake_ciphertext_for_an_image(people: list[tuple[str, list[Path]]]) -> None:
    """Negative control: 64 MiB of random bytes (what ciphertext looks like) hold the 3-byte JPEG
    start-of-image marker several times over; none of the image needles turns up in them."""
    noise = np.random.default_rng(0).bytes(64 << 20)
    assert noise.count(b"\xff\xd8\xff") == 5  # about 4 expected: 2**26 positions, 2**-24 each
    needles = image_needles(image.read_bytes() for _, chosen in people for image in chosen)
    assert [what for what, needle in needles.items() if needle in noise] == []
