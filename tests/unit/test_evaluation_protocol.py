"""The evaluation protocol: folds, label errors, balanced genuine pairs, impostor pairs, templates in memory."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.label_errors import (
    LabelErrorsFileError,
    errata_image_names,
    load_label_errors,
    parse_label_errors,
)
from engine.evaluation.protocol import (
    DERIVATION_FOLDS,
    MAX_IMAGES_PER_PERSON,
    STATEMENT_FOLDS,
    ProtocolError,
    genuine_distances,
    genuine_people,
    impostor_distances,
    load_folds,
    parse_folds,
    split,
)

PEOPLE = "2\n2\nAnn\t3\nBob\t1\n1\nCat\t2\n"


def test_folds_parsed() -> None:
    assert parse_folds(PEOPLE) == {"Ann": 1, "Bob": 1, "Cat": 2}
    assert DERIVATION_FOLDS.isdisjoint(STATEMENT_FOLDS) and DERIVATION_FOLDS | STATEMENT_FOLDS == set(range(1, 11))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("2\n1\nAnn\t3\n", "ends before fold 2"),
        ("1\n2\nAnn\t3\n", "ends inside fold 1"),
        ("1\n1\nAnn three\n", "name<TAB>images"),
        ("2\n1\nAnn\t3\n1\nAnn\t2\n", "two folds"),
        ("1\n1\nAnn\t3\nBob\t1\n", "after the last fold"),
        ("x\n", "expected a count"),
    ],
)
def test_bad_people_file_refused(text: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_folds(text)


def test_missing_people_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="set RFR_DATA"):
        load_folds(tmp_path)


def test_real_people_file(data_root: Path) -> None:
    folds = load_folds(data_root / "lfw")
    assert set(folds.values()) == set(range(1, 11))
    assert len(folds) == len([p for p in (data_root / "lfw" / "images").iterdir() if p.is_dir()])


def test_label_error_list_covers_the_published_errata(data_root: Path) -> None:
    errors = load_label_errors()
    lfw = data_root / "lfw"
    people = {p.name for p in (lfw / "images").iterdir() if p.is_dir()}
    for image in errors.images:  # every listed image exists in LFW
        person = image.rpartition("_")[0]
        assert (lfw / "images" / person / f"{image}.jpg").is_file(), image
    for pair in errors.same_person:
        assert pair <= people, pair
    errata = lfw / "LFW_ERRATA.txt"
    assert errata.is_file(), f"{errata}: the list's source must be in the data folder"
    named = errata_image_names(errata.read_text(encoding="utf-8"), people)
    assert len(named) >= 15  # the parser found the errata's entries
    aliased = {name for pair in errors.same_person for name in pair}  # e.g. John_Gruden_0001 is Jon_Gruden
    missing = {i for i in named - errors.images if i.rpartition("_")[0] not in aliased}
    assert not missing, sorted(missing)
    assert "Tamara_Mowry_0001" not in errors.images  # twins, correctly labelled


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("errors: []", "source"),
        ("source: x\nerrors: []", "non-empty list"),
        ("source: x\nerrors: [{kind: wrong, image: A_0001}]", "kind must be one of"),
        ("source: x\nerrors: [{kind: image, image: A}]", "Name_NNNN"),
        ("source: x\nerrors: [{kind: duplicate, image: A_0001}]", "duplicate_of"),
        ("source: x\nerrors: [{kind: same_person, names: [A, A]}]", "twice"),
        ("source: x\nerrors: [{kind: image, image: A_0001}, {kind: image, image: A_0001}]", "listed twice"),
        ("source: x\nerrors: [{kind: image, image: A_0001, who: B}]", "unknown key"),
    ],
)
def test_bad_label_error_file_refused(text: str, match: str) -> None:
    with pytest.raises(LabelErrorsFileError, match=match):
        parse_label_errors(text)


def _synthetic(rng: np.random.Generator) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    counts = {"Ann": 14, "Bob": 1, "Cat": 3, "Dan": 2, "Eve": 4, "Eva": 2, "Fay": 5}
    images = [f"{p}/{p}_{k:04d}.jpg" for p, n in counts.items() for k in range(1, n + 1)]
    persons = [i.split("/")[0] for i in images]
    vectors = rng.normal(size=(len(images), 128)).astype(np.float32)
    ok = np.ones(len(images), dtype=bool)
    ok[images.index("Ann/Ann_0002.jpg")] = False  # no face: Ann's 11th usable image becomes her 10th
    vectors[~ok] = np.nan
    return images, persons, vectors, ok


def test_split_balances_genuine_pairs_and_drops_label_errors() -> None:
    images, persons, vectors, ok = _synthetic(np.random.default_rng(1))
    folds = {"Ann": 1, "Bob": 2, "Cat": 3, "Dan": 6, "Eve": 7, "Eva": 8, "Fay": 9}
    errors = parse_label_errors(
        "source: test\nerrors:\n"
        "  - {kind: image, image: Cat_0002, actually: Dan}\n"
        "  - {kind: same_person, names: [Eve, Eva]}\n"
    )
    s = split(images, persons, ok, folds, errors)
    d, st = s.derivation, s.statement
    assert d.people == ("Ann", "Bob", "Cat") and st.people == ("Dan", "Eva", "Eve", "Fay")
    assert d.images_without_face == 1 and d.label_error_images == 1 and st.label_error_images == 0
    assert d.images == 18 and st.images == 13
    # Ann: 13 usable images, 10 balanced (the first ten by number that have a face)
    ann = d.owner == 0
    assert int(ann.sum()) == 13 and int(d.balanced[ann].sum()) == MAX_IMAGES_PER_PERSON
    assert [images[i] for i in d.rows[ann & d.balanced]][-1] == "Ann/Ann_0011.jpg"
    gen = genuine_distances(vectors, d)
    assert gen.size == 45 + 1  # Ann 10C2 + Cat's two remaining images
    assert genuine_people(d) == 2
    x = vectors.astype(np.float64)
    ann_rows = d.rows[ann & d.balanced].tolist()
    expected = [float(np.linalg.norm(x[a] - x[b])) for a, b in itertools.combinations(ann_rows, 2)]
    expected.append(float(np.linalg.norm(x[images.index("Cat/Cat_0001.jpg")] - x[images.index("Cat/Cat_0003.jpg")])))
    np.testing.assert_allclose(np.sort(gen), np.sort(expected), rtol=1e-12)
    # impostors: all different-person pairs, all images (not balanced), Eve x Eva never
    imp = impostor_distances(vectors, st, chunk=3)
    usable = st.rows.tolist()
    brute = sorted(
        float(np.linalg.norm(x[a] - x[b]))
        for a, b in itertools.combinations(usable, 2)
        if persons[a] != persons[b] and {persons[a], persons[b]} != {"Eve", "Eva"}
    )
    assert imp.size == len(brute) == 2 * 2 + 2 * 4 + 2 * 5 + 2 * 5 + 4 * 5
    np.testing.assert_allclose(np.sort(imp), brute, rtol=1e-12)


def test_people_in_no_fold_are_counted_and_left_out() -> None:
    images, persons, _, ok = _synthetic(np.random.default_rng(2))
    errors = parse_label_errors("source: t\nerrors: [{kind: same_person, names: [X, Y]}]")
    s = split(images, persons, ok, {"Ann": 1, "Dan": 6}, errors)
    assert s.people_in_no_fold == 5 and s.derivation.people == ("Ann",) and s.statement.people == ("Dan",)
    with pytest.raises(ProtocolError, match="same LFW copy"):
        split(images, persons, ok, {"Zed": 1}, errors)


@pytest.mark.slow
def test_templates_made_in_memory(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.evaluation.templates import compute_templates

    monkeypatch.chdir(tmp_path)
    t = compute_templates(data_root / "lfw", jobs=1, limit=6, progress=False)
    assert t.images[0] == "AJ_Cook/AJ_Cook_0001.jpg" and len(t.images) <= 6 and len(t.persons) == len(t.images)
    assert t.templates.dtype == np.float32 and t.templates.shape == (len(t.images), 128)
    assert bool(t.ok.all()) and bool(np.isfinite(t.templates).all())
    assert t.owner.tolist() == [t.people.index(p) for p in t.persons]
    assert list(tmp_path.iterdir()) == []  # nothing written
