"""Enrolment metadata (CSV and YAML): what is accepted, and errors that name the row or key."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.errors import MetadataError
from engine.library.metadata import ImageFields, load_metadata, parse_csv, parse_yaml

HEADER = "subject,image,sex,ic_code,date_of_birth,capture_date,age_range,source\n"


def test_csv_subject_and_image_rows() -> None:
    meta = parse_csv(
        HEADER
        + "Ann,,F,IC3,1980-01-31,,,custody suite A\n"
        + "Ann,ann1.jpg,,,,2000-02-01,,\n"
        + "Bob,,unknown,IC0,,2019-06-01,,\n",
        "m.csv",
    )
    assert meta.subject("Ann").sex == "female" and meta.subject("Ann").ic_code == "IC3"
    assert meta.image("Ann", "ann1.jpg").capture_date == date(2000, 2, 1)
    assert meta.image("Ann", "ann1.jpg").source == "custody suite A"  # subject default
    assert meta.age_range("Ann", "ann1.jpg") == "18-24"  # computed from date of birth
    assert meta.age_range("Ann", "other.jpg") == "unknown"
    assert meta.image("Bob", "any.jpg").capture_date == date(2019, 6, 1)
    assert meta.subject("Nobody").sex is None


def test_columns_may_be_a_subset() -> None:
    meta = parse_csv("subject,sex\nAnn,m\n", "m.csv")
    assert meta.subject("Ann").sex == "male"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("Ann,,F,IC9,,,,\n", r"m\.csv row 2: ic_code 'IC9' is not one of IC0"),
        ("Ann,,F,IC1,,,,\nBob,,X,IC1,,,,\n", r"m\.csv row 3: sex 'X' is not one of"),
        ("Ann,,F,IC1,31/01/1980,,,\n", r"row 2: date_of_birth '31/01/1980' is not a date"),
        ("Ann,,F,,,,,\nAnn,a.jpg,M,,,,,\n", r"row 3: sex 'male' for 'Ann' contradicts 'female' at m\.csv row 2"),
        ("Ann,,,,2000-01-01,2010-01-01,25-34,\n", r"row 2: age_range '25-34' contradicts"),
        ("Ann,,,,2000-01-01,1999-01-01,,\n", r"row 2: age -1 is negative"),
        ("Ann,,,,,,adult,\n", r"row 2: age_range 'adult' is not one of"),
        (",,F,,,,,\n", r"row 2: the subject is empty"),
        ("Ann,a.jpg,,,,,,\nAnn,a.jpg,,,,,,\n", r"row 3: image 'a.jpg' of 'Ann' is listed twice"),
        ("Ann,,F,IC1,,,,,extra\n", r"row 2: more values than columns"),
    ],
)
def test_csv_errors_name_the_row(body: str, match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        parse_csv(HEADER + body, "m.csv")


def test_csv_header_errors() -> None:
    with pytest.raises(MetadataError, match="'subject' column"):
        parse_csv("name,sex\nAnn,F\n", "m.csv")
    with pytest.raises(MetadataError, match="unknown column 'ethnicity'"):
        parse_csv("subject,ethnicity\nAnn,x\n", "m.csv")


def test_yaml() -> None:
    meta = parse_yaml(
        """
subjects:
  Ann:
    sex: female
    ic_code: IC4
    date_of_birth: 1970-03-03
    images:
      a.jpg: {capture_date: 1990-03-03, source: scan}
  Bob:
""",
        "m.yaml",
    )
    assert meta.subject("Ann").date_of_birth == date(1970, 3, 3)
    assert meta.age_range("Ann", "a.jpg") == "18-24"
    assert meta.image("Ann", "a.jpg").source == "scan"
    assert "Bob" in meta.subjects


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("subjects: [1, 2]\n", "one key, 'subjects'"),
        ("people: {}\n", "one key, 'subjects'"),
        ("subjects:\n  Ann: {ic_code: IC7}\n", r"m\.yaml subjects\.Ann: ic_code 'IC7'"),
        ("subjects:\n  Ann: {colour: red}\n", r"m\.yaml subjects\.Ann: unknown key 'colour'"),
        (
            "subjects:\n  Ann:\n    images:\n      a.jpg: {sex: F}\n",
            r"subjects\.Ann\.images\.a\.jpg: unknown key 'sex'",
        ),
        ("subjects:\n  Ann:\n    images: [a.jpg]\n", r"subjects\.Ann\.images: must be a mapping"),
        ("subjects:\n  Ann: {sex: [\n", r"m\.yaml line \d+: not valid YAML"),
    ],
)
def test_yaml_errors_name_the_key(text: str, match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        parse_yaml(text, "m.yaml")


def test_folders_must_exist_for_every_subject_and_image() -> None:
    meta = parse_csv(HEADER + "Ann,,F,,,,,\nBob,b.jpg,,,,,,\n", "m.csv")
    meta.check_folders({"Ann": [], "Bob": ["b.jpg"]})
    with pytest.raises(MetadataError, match=r"row 2: subject 'Ann' has no folder"):
        meta.check_folders({"Bob": ["b.jpg"]})
    with pytest.raises(MetadataError, match=r"row 3: image 'b.jpg' is not in subject folder 'Bob'"):
        meta.check_folders({"Ann": [], "Bob": ["c.jpg"]})


def test_load_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("subject,sex\nAnn,F\n")
    (tmp_path / "m.yml").write_text("subjects:\n  Ann: {sex: F}\n")
    (tmp_path / "m.txt").write_text("x")
    assert load_metadata(tmp_path / "m.csv").subject("Ann").sex == "female"
    assert load_metadata(tmp_path / "m.yml").subject("Ann").sex == "female"
    with pytest.raises(MetadataError, match=r"\.csv, \.yaml or \.yml"):
        load_metadata(tmp_path / "m.txt")
    with pytest.raises(MetadataError, match="does not exist"):
        load_metadata(tmp_path / "missing.csv")


# ---- face_x, face_y: a person names the face of a photograph of several --------------------------

POINT_HEADER = "subject,image,capture_date,source,face_x,face_y\n"


def test_a_point_on_the_face_is_read_per_image_and_never_inherited() -> None:
    meta = parse_csv(
        POINT_HEADER + "Ann,,2001-01-01,custody suite A,,\nAnn,group.jpg,,,212,140\nAnn,zero.jpg,,,0,0\n", "m.csv"
    )
    assert meta.image("Ann", "group.jpg").face_point == (212, 140)
    assert meta.image("Ann", "group.jpg").source == "custody suite A"  # the other fields still fall back
    assert meta.image("Ann", "zero.jpg").face_point == (0, 0)  # the photograph's top-left pixel is a point
    assert meta.image("Ann", "other.jpg").face_point is None
    named = meta.image("Ann", "group.jpg")
    assert ImageFields(source="x").over(named).face_point is None  # over() never takes the default's point
    yaml_meta = parse_yaml(
        "subjects:\n  Ann:\n    images:\n      group.jpg: {face_x: 212, face_y: 140}\n      b.jpg: {}\n", "m.yaml"
    )
    assert yaml_meta.image("Ann", "group.jpg").face_point == (212, 140)
    assert yaml_meta.image("Ann", "b.jpg").face_point is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("Ann,a.jpg,,,212,\n", r"m\.csv row 2: face_x is given without face_y: give both .* or neither"),
        ("Ann,a.jpg,,,,140\n", r"m\.csv row 2: face_y is given without face_x: give both"),
        ("Ann,a.jpg,,,-3,140\n", r"m\.csv row 2: face_x '-3' is not a whole number of pixels \(0 or more"),
        ("Ann,a.jpg,,,12,140.5\n", r"m\.csv row 2: face_y '140\.5' is not a whole number of pixels"),
        ("Ann,a.jpg,,,left,140\n", r"m\.csv row 2: face_x 'left' is not a whole number of pixels"),
        ("Ann,a.jpg,,,1" + "0" * 12 + ",140\n", r"m\.csv row 2: face_x '10+' is not a whole number of pixels"),
        ("Ann,,,,212,140\n", r"m\.csv row 2: face_x and face_y name the face in one photograph: give them on"),
    ],
)
def test_a_point_that_is_not_one_is_refused_naming_the_row(body: str, match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        parse_csv(POINT_HEADER + body, "m.csv")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "subjects:\n  Ann: {face_x: 1, face_y: 2}\n",
            r"m\.yaml subjects\.Ann: face_x and face_y name the face in one",
        ),
        (
            "subjects:\n  Ann:\n    images:\n      a.jpg: {face_x: 1}\n",
            r"subjects\.Ann\.images\.a\.jpg: face_x is given without face_y",
        ),
        (
            "subjects:\n  Ann:\n    images:\n      a.jpg: {face_x: true, face_y: 2}\n",
            r"subjects\.Ann\.images\.a\.jpg: face_x 'True' is not a whole number of pixels",
        ),
        (
            "subjects:\n  Ann:\n    images:\n      a.jpg: {face_x: 2.0, face_y: 2}\n",
            r"face_x '2\.0' is not a whole number of pixels",
        ),
    ],
)
def test_yaml_points_are_refused_as_csv_points_are(text: str, match: str) -> None:
    with pytest.raises(MetadataError, match=match):
        parse_yaml(text, "m.yaml")
