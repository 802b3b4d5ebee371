"""``Gallery.build(gallery_face="centre")``: a gallery photograph the rules refuse as several faces is enrolled
with the face at its centre, through the code that enrols a face a person named (synthetic engine, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from engine.errors import UsageError
from engine.evaluation.search import Gallery, evaluation_json
from engine.faces.types import Face
from tests.synthetic import SyntheticFaceEngine, load_rgb_with_opencv, synthetic_jpeg


class DistinctFaces(SyntheticFaceEngine):
    """The synthetic engine, its faces' templates told apart (face ``i`` shifted by ``i``), and each point asked."""

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        faces = super().analyze(rgb, upsample, embed)
        for i, face in enumerate(faces):
            if face.embedding is not None:
                face.embedding = face.embedding + np.float32(i)
        return faces


@pytest.fixture
def gallery_dir(tmp_path: Path) -> Path:
    """pat: one photograph of two faces of a size (64x64: left half, right half); sam: one face; dee: none."""
    for seed, (subject, kind) in enumerate((("pat", "pair"), ("sam", "face"), ("dee", "none"))):
        (tmp_path / subject).mkdir()
        (tmp_path / subject / f"{subject}.jpg").write_bytes(synthetic_jpeg(seed, 0, kind))
    return tmp_path


def test_the_rules_refuse_a_photograph_of_two_faces_of_a_size(gallery_dir: Path) -> None:
    with Gallery.build(gallery_dir, DistinctFaces(), load_rgb_with_opencv) as gallery:
        report = gallery.report.to_json()
    assert report["enrolled"] == 1 and report["refused_by_reason"] == {"several_faces": 1, "no_face": 1}
    assert report["face_named_at_centre"] == 0


def test_centre_enrols_the_face_holding_the_image_centre(gallery_dir: Path) -> None:
    engine = DistinctFaces()
    pair = load_rgb_with_opencv((gallery_dir / "pat" / "pat.jpg").read_bytes(), "pat.jpg")
    left, right = engine.analyze(pair)
    assert (left.box.left, left.box.right) == (0, 31) and (right.box.left, right.box.right) == (32, 63)
    with Gallery.build(gallery_dir, engine, load_rgb_with_opencv, gallery_face="centre") as gallery:
        report = gallery.report.to_json()
        assert report["enrolled"] == 2 and report["refused_by_reason"] == {"no_face": 1}  # no face stays refused
        assert report["face_named_at_centre"] == 1 and gallery.report.face_named_at_centre == ["pat/pat.jpg"]
        assert report["chose_dominant_face"] == 0
        assert left.embedding is not None and right.embedding is not None
        (nearest,), _ = gallery.search(left.embedding, 1)  # the centre, (31, 31), is in the left face
        assert nearest.subject == "pat" and nearest.distance < 1e-6
        (nearest,), _ = gallery.search(right.embedding, 1)
        assert nearest.distance > 0.5
        payload = evaluation_json(gallery, [], None, {}, 1, "notice", "centre", "centre")
    assert payload["gallery_face"] == "centre" and payload["gallery"]["face_named_at_centre"] == 1


def test_an_unknown_gallery_face_rule_is_refused(gallery_dir: Path) -> None:
    with pytest.raises(UsageError, match="the gallery face rule is one of rules, centre, not 'largest'"):
        Gallery.build(gallery_dir, DistinctFaces(), load_rgb_with_opencv, gallery_face="largest")
