"""Finding faces at any size (``find_faces``) and the one face a photograph is of (``dominant_face``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from engine.errors import ImageError
from engine.faces.detect import MAX_PIXELS, FaceDetector, score_map_shape, upsampled_size
from engine.faces.pipeline import (
    DOMINANT_AREA_RATIO,
    FaceEngine,
    box_contains,
    dominant_face,
    find_faces,
    nearest_to_centre,
    reference_face,
    visible_area,
)
from engine.faces.types import Box, Face
from engine.library.enrol import load_rgb


def face(left: int, top: int, right: int, bottom: int) -> Face:
    return Face(Box(left, top, right, bottom), 1.0, np.zeros((5, 2), dtype=np.int64), None, np.zeros(128, np.float32))


class FoundFrom:
    """An analyzer that finds ``faces`` from upsampling ``level`` on (never, with None), recording each call."""

    def __init__(self, level: int | None, faces: Sequence[Face] = ()) -> None:
        self.level = level
        self.faces = list(faces) or [face(10, 10, 40, 40)]
        self.calls: list[int] = []

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        self.calls.append(upsample)
        return list(self.faces) if self.level is not None and upsample >= self.level else []


def blank(rows: int, cols: int) -> NDArray[np.uint8]:
    """An image of that size without its pixels' memory (``find_faces`` reads only the shape)."""
    return np.broadcast_to(np.zeros(3, np.uint8), (rows, cols, 3))


# ---- find_faces ---------------------------------------------------------------------------------


def test_faces_found_at_the_photographs_own_size_are_not_looked_for_again() -> None:
    analyzer = FoundFrom(0)
    found = find_faces(analyzer, blank(100, 100))
    assert analyzer.calls == [0]
    assert found.upsample == 0 and len(found.faces) == 1 and found.note is None and not found.enlarged


@pytest.mark.parametrize(
    ("level", "calls", "note"),
    [
        (1, [0, 1], "no face at the photograph's own size; found at 2x enlargement"),
        (2, [0, 1, 2], "no face at the photograph's own size or 2x enlargement; found at 4x enlargement"),
        (None, [0, 1, 2], "no face found at the photograph's own size, 2x enlargement or 4x enlargement"),
    ],
)
def test_enlarges_only_while_nothing_is_found_and_says_so(level: int | None, calls: list[int], note: str) -> None:
    analyzer = FoundFrom(level)
    found = find_faces(analyzer, blank(150, 150))
    assert analyzer.calls == calls
    assert found.note == note
    assert found.upsample == calls[-1] and found.tried == tuple(calls)
    assert bool(found.faces) == (level is not None) and found.enlarged == (level is not None)


def test_the_starting_level_is_the_callers() -> None:
    analyzer = FoundFrom(None)
    assert find_faces(analyzer, blank(150, 150), start=1).note == ("no face found at 2x enlargement or 4x enlargement")
    assert analyzer.calls == [1, 2]
    analyzer = FoundFrom(2)
    found = find_faces(analyzer, blank(150, 150), start=1)
    assert analyzer.calls == [1, 2] and found.note == "no face at 2x enlargement; found at 4x enlargement"
    analyzer = FoundFrom(None)
    assert find_faces(analyzer, blank(150, 150), start=2).note is None  # asked for 2, nothing further to try
    assert analyzer.calls == [2]


@pytest.mark.parametrize(("rows", "cols", "calls"), [(2000, 2000, [0, 1]), (3000, 4000, [0]), (1080, 1920, [0, 1])])
def test_never_enlarges_past_the_detectors_pixel_budget(rows: int, cols: int, calls: list[int]) -> None:
    analyzer = FoundFrom(None)
    found = find_faces(analyzer, blank(rows, cols))
    assert analyzer.calls == calls
    for level in analyzer.calls:
        up_rows, up_cols = upsampled_size(rows, cols, level)
        assert up_rows * up_cols <= MAX_PIXELS
    assert found.note is not None and "over the detector's 20-megapixel limit" in found.note
    assert found.note.startswith("no face found at the photograph's own size")


def test_the_real_detector_is_never_asked_beyond_its_budget() -> None:
    """With a small budget, the detector itself (which refuses an image over it) is asked only what fits."""
    shapes: list[tuple[int, ...]] = []

    def no_faces(tensor: np.ndarray) -> np.ndarray:
        shapes.append(tensor.shape)
        return np.full((1, 1, *score_map_shape(tensor.shape[2], tensor.shape[3])), -1.0, np.float32)

    detector = FaceDetector(no_faces, max_pixels=50_000)

    class DetectorOnly:
        def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
            return [face(*d.box.as_list()) for d in detector.detect(rgb, upsample)]

    rgb = np.zeros((100, 100, 3), np.uint8)  # 2x is 201x202 (40,602 pixels); 4x would be 403x406
    found = find_faces(DetectorOnly(), rgb, max_pixels=detector.max_pixels)
    assert found.tried == (0, 1) and not found.faces and len(shapes) == 2
    assert found.note is not None and "4x enlargement would be 406x403 pixels" in found.note
    with pytest.raises(ImageError, match="megapixel limit"):  # what enlarging once more would have met
        detector.detect(rgb, 2)


# ---- dominant_face ------------------------------------------------------------------------------

SHAPE = (250, 250, 3)  # LFW's photographs; the centre is (124.5, 124.5)


def test_one_face_is_the_face_and_none_is_none() -> None:
    only = face(0, 0, 10, 10)  # even small and off-centre
    assert dominant_face([only], SHAPE) is only
    assert dominant_face([], SHAPE) is None


def test_a_central_face_much_larger_than_the_rest_is_chosen() -> None:
    central = face(75, 75, 174, 174)  # 100x100 at the centre
    background = [face(190, 10, 229, 49), face(5, 180, 44, 219)]  # 40x40 each
    assert dominant_face([*background, central], SHAPE) is central


def test_similar_sizes_are_ambiguous() -> None:
    central = face(75, 75, 174, 174)  # 100x100 = 10,000 pixels
    assert DOMINANT_AREA_RATIO == 1.5
    assert dominant_face([central, face(190, 60, 239, 192)], SHAPE) is central  # 50x133 = 6,650: 1.504x
    assert dominant_face([central, face(190, 60, 239, 193)], SHAPE) is None  # 50x134 = 6,700: 1.493x
    assert dominant_face([face(20, 75, 119, 174), face(130, 75, 229, 174)], SHAPE) is None  # two people side by side


def test_a_face_cut_by_the_edge_counts_for_what_shows() -> None:
    central = face(75, 75, 174, 174)
    cut = face(180, 60, 279, 159)  # as large as the central face, but only 70 of its 100 columns inside
    assert visible_area(cut.box, SHAPE) == 70 * 100
    assert dominant_face([central, cut], SHAPE) is None  # 1.43x as they show
    half_out = face(200, 60, 299, 159)  # 50 columns inside: 2x
    assert dominant_face([central, half_out], SHAPE) is central


def test_a_larger_face_off_to_the_side_is_not_dominant() -> None:
    large_left = face(0, 60, 119, 179)  # 120x120 at the left edge
    small_central = face(105, 105, 144, 144)  # 40x40 at the centre
    assert dominant_face([large_left, small_central], SHAPE) is None
    assert nearest_to_centre([large_left, small_central], SHAPE) is small_central


def test_reference_face_says_why_it_refuses() -> None:
    none = reference_face(FoundFrom(None), blank(150, 150))
    assert none.face is None and none.reason == "no_face"
    assert none.detail == (
        "no face found at the photograph's own size, 2x enlargement or 4x enlargement: "
        "a reference image must show one face"
    )
    pair = reference_face(FoundFrom(0, [face(20, 75, 119, 174), face(130, 75, 229, 174)]), blank(250, 250))
    assert pair.face is None and pair.reason == "several_faces"
    assert pair.detail is not None and pair.detail.startswith("2 faces found and none clearly dominant")
    central = face(75, 75, 174, 174)
    chosen = reference_face(FoundFrom(0, [face(190, 10, 229, 49), central]), blank(250, 250))
    assert chosen.face is central and chosen.chose_dominant and chosen.reason is None
    alone = reference_face(FoundFrom(1), blank(150, 150))
    assert alone.face is not None and not alone.chose_dominant and alone.found.enlarged


# ---- reference_face with a point: a person names the face ---------------------------------------

SIDE_BY_SIDE = (face(20, 75, 119, 174), face(130, 75, 229, 174))  # two people of a size: several_faces by the rules


def test_a_point_in_one_of_two_similar_faces_enrols_that_face() -> None:
    left, right = SIDE_BY_SIDE
    assert reference_face(FoundFrom(0, SIDE_BY_SIDE), blank(250, 250)).reason == "several_faces"
    chosen = reference_face(FoundFrom(0, SIDE_BY_SIDE), blank(250, 250), point=(180, 120))
    assert chosen.face is right and chosen.chosen_by == "person" and chosen.reason is None
    assert chosen.named_by_person and not chosen.chose_dominant  # counted apart from the dominant rule's choices
    assert reference_face(FoundFrom(0, SIDE_BY_SIDE), blank(250, 250), point=(20, 174)).face is left  # corners count


def test_the_persons_choice_wins_over_the_dominant_rule() -> None:
    central, background = face(75, 75, 174, 174), face(190, 10, 229, 49)
    assert reference_face(FoundFrom(0, [central, background]), blank(250, 250)).chosen_by == "dominant"
    named = reference_face(FoundFrom(0, [central, background]), blank(250, 250), point=(200, 30))
    assert named.face is background and named.chosen_by == "person"


def test_a_point_in_no_face_is_refused_naming_the_point_and_the_faces() -> None:
    missed = reference_face(FoundFrom(0, SIDE_BY_SIDE), blank(250, 250), point=(125, 120))  # between the two
    assert missed.face is None and missed.reason == "no_face_at_point" and missed.chosen_by is None
    assert missed.detail == (
        "the point named (face_x 125, face_y 120) is not in any of the 2 faces found: put the point on the face of "
        "the person the photograph is of (pixels from its left and top, as displayed), and check it is the right "
        "photograph (looked for again at 2x enlargement or 4x enlargement)"
    )
    outside = reference_face(FoundFrom(0, SIDE_BY_SIDE), blank(250, 250), point=(250, 120))
    assert outside.reason == "no_face_at_point"
    assert outside.detail is not None and "is outside the photograph, which is 250x250 pixels" in outside.detail
    assert "(2 faces found)" in outside.detail


def test_a_single_face_must_hold_the_point_too() -> None:
    """One face is enrolled without a point; with one, a point outside it means another photograph was meant."""
    only = face(75, 75, 174, 174)
    assert reference_face(FoundFrom(0, [only]), blank(250, 250)).chosen_by == "only"
    away = reference_face(FoundFrom(0, [only]), blank(250, 250), point=(10, 10))
    assert away.face is None and away.reason == "no_face_at_point"
    assert away.detail is not None and away.detail.startswith(
        "the point named (face_x 10, face_y 10) is not in the only face found"
    )
    held = reference_face(FoundFrom(0, [only]), blank(250, 250), point=(100, 100))
    assert held.face is only and held.chosen_by == "person"


def test_a_point_where_two_boxes_overlap_is_refused() -> None:
    front, behind = face(50, 50, 150, 150), face(120, 120, 220, 220)
    both = reference_face(FoundFrom(0, [front, behind]), blank(250, 250), point=(130, 130))
    assert both.face is None and both.reason == "face_point_ambiguous"
    assert both.detail == (
        "the point named (face_x 130, face_y 130) is in 2 of the 2 faces found, where their boxes overlap: "
        "put the point on a part of the face that no other face covers"
    )
    assert reference_face(FoundFrom(0, [front, behind]), blank(250, 250), point=(60, 60)).face is front


def test_a_box_counts_only_as_far_as_the_photograph() -> None:
    """dlib's boxes may reach past the edge; the point is in the photograph's pixels, so the box is clipped."""
    cut = face(180, 60, 279, 159)
    assert box_contains(cut.box, (249, 100), (250, 250, 3)) and not box_contains(cut.box, (250, 100), (250, 250, 3))
    refused = reference_face(FoundFrom(0, [cut]), blank(250, 250), point=(260, 100))
    assert refused.reason == "no_face_at_point"


def test_a_point_meets_faces_found_enlarged_in_the_photographs_own_pixels() -> None:
    """``find_faces`` may enlarge; the boxes it returns are the photograph's own (the detector maps them down)."""
    small = face(100, 100, 139, 139)
    found = reference_face(FoundFrom(1, [small, face(10, 10, 49, 49)]), blank(150, 150), point=(120, 120))
    assert found.found.enlarged and found.face is small and found.chosen_by == "person"
    assert reference_face(FoundFrom(None), blank(150, 150), point=(75, 75)).reason == "no_face"  # no face at all


class ByLevel:
    """An analyzer that finds ``faces[level]`` at each upsampling level (none where not given), recording calls."""

    def __init__(self, faces: dict[int, Sequence[Face]]) -> None:
        self.faces = faces
        self.calls: list[int] = []

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        self.calls.append(upsample)
        return list(self.faces.get(upsample, ()))


def test_a_named_face_too_small_for_the_first_size_is_looked_for_enlarged() -> None:
    """find_faces stops at the first size with any face; the small face a person named is found larger."""
    large, small = face(60, 60, 179, 179), face(200, 20, 229, 49)
    analyzer = ByLevel({0: [large], 1: [large], 2: [large, small]})
    chosen = reference_face(analyzer, blank(250, 250), point=(214, 34))
    assert analyzer.calls == [0, 1, 2]
    assert chosen.face is small and chosen.chosen_by == "person" and chosen.found.enlarged
    assert chosen.found.upsample == 2 and chosen.found.tried == (0, 1, 2)
    assert chosen.found.note == "the face at the point found only at 4x enlargement"
    held = ByLevel({0: [large], 2: [large, small]})
    assert reference_face(held, blank(250, 250), point=(100, 100)).face is large and held.calls == [0]  # no search
    nowhere = ByLevel({0: [large], 1: [large], 2: [large]})
    missed = reference_face(nowhere, blank(250, 250), point=(214, 34))
    assert missed.face is None and missed.reason == "no_face_at_point" and nowhere.calls == [0, 1, 2]
    assert missed.detail is not None
    assert missed.detail.endswith("(looked for again at 2x enlargement or 4x enlargement)")
    outside = ByLevel({0: [large]})
    assert reference_face(outside, blank(250, 250), point=(300, 34)).reason == "no_face_at_point"
    assert outside.calls == [0]  # a point off the photograph is not looked for


def test_the_closer_look_keeps_to_the_detectors_pixel_budget() -> None:
    """A 4,000 x 3,000 photograph at 2x is 48 megapixels, over the detector's 20: it is not enlarged for a point."""
    large = face(1500, 1000, 2499, 1999)
    analyzer = ByLevel({0: [large], 1: [large, face(100, 100, 139, 139)]})
    refused = reference_face(analyzer, blank(3000, 4000), point=(120, 120))
    assert refused.reason == "no_face_at_point" and analyzer.calls == [0]
    assert refused.detail is not None and "looked for again" not in refused.detail


# ---- on real photographs with the real engine ---------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine.open("CPU")


def lfw_photo(data_root: Path, name: str, size: int | None = None) -> NDArray[np.uint8]:
    """An LFW photograph decoded as enrolment decodes it; ``size``: shrunk whole to size x size (in memory)."""
    path = data_root / "lfw" / "images" / name.rsplit("_", 1)[0] / f"{name}.jpg"
    rgb = load_rgb(path.read_bytes(), str(path))
    if size is None:
        return rgb
    return np.asarray(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA), dtype=np.uint8)


@pytest.mark.parametrize("name", ["Albert_Brooks_0001", "Bo_Ryan_0001", "Brad_Smith_0001"])
def test_the_real_engine_finds_faces_of_60_pixels(data_root: Path, engine: FaceEngine, name: str) -> None:
    """An LFW photograph shrunk to 150x150 (its face about 60 px, as in a CCTV still): none at the
    detector's own size (its window is 80 px), found enlarged 2x, with a template."""
    small = lfw_photo(data_root, name, 150)
    assert engine.analyze(small, upsample=0, embed=False) == []
    found = find_faces(engine, small)
    assert found.upsample == 1 and len(found.faces) == 1
    assert found.note == "no face at the photograph's own size; found at 2x enlargement"
    box = found.faces[0].box
    assert 45 <= box.width <= 70 and found.faces[0].embedding is not None


def test_the_real_engine_enlarges_4x_for_faces_of_20_pixels(data_root: Path, engine: FaceEngine) -> None:
    tiny = lfw_photo(data_root, "Albert_Brooks_0001", 56)
    found = find_faces(engine, tiny, embed=False)
    assert found.tried == (0, 1, 2) and len(found.faces) == 1 and found.upsample == 2


def test_a_real_reference_photograph_with_a_background_face(data_root: Path, engine: FaceEngine) -> None:
    """Ben_Glisan_0001 holds a second, smaller face: the central one is chosen, and it is him."""
    photo = lfw_photo(data_root, "Ben_Glisan_0001")
    faces = engine.analyze(photo, upsample=0, embed=True)
    assert len(faces) == 2
    chosen = dominant_face(faces, photo.shape)
    assert chosen is not None and chosen.embedding is not None
    other = next(f for f in faces if f is not chosen)
    assert other.embedding is not None
    assert visible_area(chosen.box, photo.shape) >= DOMINANT_AREA_RATIO * visible_area(other.box, photo.shape)
    (him,) = engine.analyze(lfw_photo(data_root, "Ben_Glisan_0002"), upsample=0, embed=True)
    assert him.embedding is not None
    assert np.linalg.norm(chosen.embedding - him.embedding) < 0.6 < np.linalg.norm(other.embedding - him.embedding)
    assert reference_face(engine, photo).chose_dominant


def test_a_real_photograph_of_two_people_of_a_size_is_refused(data_root: Path, engine: FaceEngine) -> None:
    photo = lfw_photo(data_root, "Colin_Powell_0068")
    faces = engine.analyze(photo, upsample=0, embed=False)
    assert len(faces) >= 2 and dominant_face(faces, photo.shape) is None


def test_a_person_names_the_face_in_a_real_photograph_of_two(data_root: Path, engine: FaceEngine) -> None:
    """Colin_Powell_0068, refused by the rules: a point on him enrols him, a point on the other man the other."""
    photo = lfw_photo(data_root, "Colin_Powell_0068")
    him = reference_face(engine, photo, point=(124, 124))
    other = reference_face(engine, photo, point=(20, 120))
    assert him.chosen_by == other.chosen_by == "person" and him.face is not None and other.face is not None
    assert him.face.box != other.face.box
    (known,) = engine.analyze(lfw_photo(data_root, "Colin_Powell_0001"), upsample=0, embed=True)
    assert him.face.embedding is not None and other.face.embedding is not None and known.embedding is not None
    assert (
        np.linalg.norm(him.face.embedding - known.embedding)
        < 0.6
        < np.linalg.norm(other.face.embedding - known.embedding)
    )
