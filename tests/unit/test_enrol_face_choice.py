"""Enrolment with the real face engine: small faces are looked for enlarged, a clearly dominant face is chosen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from engine.audit import AuditSigningKey
from engine.faces.pipeline import FaceEngine
from engine.library import create_library, enroll_directory
from engine.security.keys import WorkspaceKey
from engine.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.create(tmp_path / "ws", WorkspaceKey.generate(), audit_key=AuditSigningKey.generate()) as workspace:
        yield workspace


def test_enrolment_enlarges_small_faces_and_chooses_a_dominant_face(
    ws: Workspace, data_root: Path, tmp_path: Path
) -> None:
    images = data_root / "lfw" / "images"
    folder = tmp_path / "enrol"
    for subject in ("Ben_Glisan", "Colin_Powell", "Albert_Brooks"):
        (folder / subject).mkdir(parents=True)
    # A central face with a smaller one behind it; two people of a size; a face of about 60 pixels.
    (folder / "Ben_Glisan" / "Ben_Glisan_0001.jpg").symlink_to(images / "Ben_Glisan" / "Ben_Glisan_0001.jpg")
    (folder / "Colin_Powell" / "Colin_Powell_0068.jpg").symlink_to(images / "Colin_Powell" / "Colin_Powell_0068.jpg")
    photo = cv2.imread(str(images / "Albert_Brooks" / "Albert_Brooks_0001.jpg"))
    cv2.imwrite(
        str(folder / "Albert_Brooks" / "small.png"), cv2.resize(photo, (150, 150), interpolation=cv2.INTER_AREA)
    )

    engine = FaceEngine.open("CPU")
    lib = create_library(ws, "reference", "substantive", created_by="tester")
    report = enroll_directory(ws, lib, folder, engine, added_by="tester")

    summary = report.to_json()
    assert summary["enrolled"] == 2 and summary["chose_dominant_face"] == 1
    assert report.chose_dominant_face == [str(folder / "Ben_Glisan" / "Ben_Glisan_0001.jpg")]
    (skipped,) = report.skipped
    assert skipped.reason == "several_faces" and skipped.path.endswith("Colin_Powell_0068.jpg")
    assert skipped.detail.startswith("2 faces found and none clearly dominant: a reference image must show one face")
    boxes = dict(
        ws.query(
            "SELECT s.reference, t.face_box FROM templates t JOIN images i ON i.id = t.image_id"
            " JOIN subjects s ON s.id = i.subject_id"
        )
    )
    left, top, right, bottom = json.loads(boxes["Ben_Glisan"])
    assert left < 125 < right and top < 125 < bottom  # the central face, not the one behind
    left, _, right, _ = json.loads(boxes["Albert_Brooks"])
    assert 45 <= right - left + 1 <= 70  # found at 2x enlargement, recorded in the photograph's own pixels
