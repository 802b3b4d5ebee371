"""Calibration: out-of-sample threshold, statements that never over-claim, the 1:N meaning, the file, the pins."""

from __future__ import annotations

import importlib.util
import itertools
import math
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import CalibrationError
from engine.evaluation.calibration import GroupScores, SetScores, build_calibration
from engine.evaluation.equity import PairSet
from engine.evaluation.metrics import bootstrap_fmr_upper_bounds
from engine.policy import load_default_policy, load_policy
from engine.scoring.calibration import (
    FLOOR_WORDS,
    MIN_EVENTS,
    Calibration,
    FalseMatchEstimate,
    LibraryMeaning,
    check_policy_threshold,
    derive_threshold,
    load_calibration,
    one_in,
    parse_calibration,
)
from engine.scoring.statistics import clopper_pearson_upper

REPO = Path(__file__).resolve().parents[2]
SHA = "ab" * 32

# Derivation: 100 impostor pairs at each grid midpoint 0.5005 ... 1.4995, so exactly 100 * m lie at or
# below 0.5 + m/1000. Statement (held out, different): 29 pairs at 0.4005, one at 0.4015 (the 30th
# event arrives at 0.402), then 200 at each midpoint from 0.5005. Genuine: spread over 0.10025 ... 0.59975.
DERIVATION_IMPOSTOR = np.repeat(0.5005 + 0.001 * np.arange(1000), 100)
STATEMENT_IMPOSTOR = np.concatenate([np.full(29, 0.4005), [0.4015], np.repeat(0.5005 + 0.001 * np.arange(1000), 200)])
GENUINE = 0.10025 + 0.0005 * np.arange(1000)  # never on a grid point
STATEMENT_PAIRS = 200_030
GROUPS = {
    "sex:female": GroupScores(GENUINE[:100], np.repeat(0.5005 + 0.001 * np.arange(100), 3), 40),  # 300 pairs
    "race:Asian": GroupScores(GENUINE[:10], np.r_[np.full(20, 0.45), np.full(80, 1.2)], 6),  # 20 close: < 30 events
}


def make(
    statement_impostor: np.ndarray = STATEMENT_IMPOSTOR, groups: dict[str, GroupScores] = GROUPS, **changes: object
) -> Calibration:
    fields: dict[str, object] = {
        "model_id": "test_model",
        "model_sha256": SHA,
        "dataset": "synthetic",
        "created_by": "tests/unit/test_calibration.py",
        "images_without_face": 0,
        "excluded_label_errors": 3,
        "group_labels": "synthetic labels",
    }
    fields.update(changes)
    derivation = SetScores(GENUINE, DERIVATION_IMPOSTOR, 100, 500, "synthetic folds 1-5")
    statement = SetScores(GENUINE, statement_impostor, 120, 600, "synthetic folds 6-10", groups)
    return build_calibration(derivation, statement, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cal() -> Calibration:
    return make()


def stated_one_in(phrase: str) -> int:
    """The N of "... 1 in N ..." as a number (the smaller N, the higher the rate the words state)."""
    m = re.search(r"1 in ([0-9,]+(?:\.[0-9])?)", phrase)
    assert m is not None, phrase
    return float(m.group(1).replace(",", ""))  # type: ignore[return-value]


class TestStatements:
    def test_a_rate_needs_thirty_errors_behind_it(self, cal: Calibration) -> None:
        assert MIN_EVENTS == 30
        below = cal.false_match_rate(0.401)  # 29 events
        assert below.events == 29 and not below.supported and below.rate is None
        assert below.phrase() == f"below 1 in 6,600 ({FLOOR_WORDS})"  # 200,030 / 30 = 6,667, rounded down
        at = cal.false_match_rate(0.402)  # the 30th
        assert at.supported and at.rate == 30 / STATEMENT_PAIRS and at.phrase() == "about 1 in 6,600"
        assert cal.false_match_rate(0.510).phrase() == "about 1 in 98"  # 2,030 of 200,030 = 1 in 98.5

    def test_rates_come_from_the_held_out_people_not_the_derivation_people(self, cal: Calibration) -> None:
        estimate = cal.false_match_rate(0.600)
        assert (estimate.events, estimate.pairs) == (30 + 200 * 100, STATEMENT_PAIRS)
        assert cal.derivation.impostor_at_or_below[600] == 100 * 100

    def test_below_the_floor_the_words_never_change(self, cal: Calibration) -> None:
        texts = {cal.describe_score(d) for d in (0.0, 0.1, 0.3, 0.4, 0.4009, 0.401)}
        assert len({t.split("; distance")[0] for t in texts}) == 1
        assert "fewer than 30 of 200,030 different-person pairs of held-out people" in cal.describe_score(0.2)

    def test_the_wording_never_weakens_as_faces_get_closer_at_any_grid_distance(self, cal: Calibration) -> None:
        assert_monotone(cal)

    def test_the_shipped_calibration_wording_is_monotone(self) -> None:
        assert_monotone(load_calibration(REPO / "models" / "calibration.yaml"))

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.floats(0.0, 1.3, allow_nan=False), min_size=1, max_size=400), st.integers(1, 40))
    def test_monotone_for_any_scores(self, impostor: list[float], min_events: int) -> None:
        assert_monotone(make(np.asarray(impostor), min_events=min_events))

    def test_a_distance_between_rows_takes_the_row_above(self, cal: Calibration) -> None:
        assert cal.false_match_rate(0.4011).events == 30  # not 29: never a lower rate than measured
        assert cal.false_match_rate(0.401).events == 29
        assert cal.false_match_rate(5.0).events == STATEMENT_PAIRS

    def test_evidence_and_interval(self, cal: Calibration) -> None:
        text = cal.describe_score(0.510)
        assert text.startswith("estimated false-match rate about 1 in 98 (2,030 of 200,030 different-person pairs")
        assert "95% interval 1 in 94 to 1 in 100" in text and "distance 0.510" in text and cal.id in text

    def test_an_interval_that_rounds_to_the_figure_is_left_out(self) -> None:
        evidence = FalseMatchEstimate(0.6, 174_842, 24_735_420).evidence()
        assert evidence == "174,842 of 24,735,420 different-person pairs of held-out people scored this close"

    def test_one_in_rounds_toward_a_higher_rate(self) -> None:
        assert one_in(1 / 44_999) == "44,000" and one_in(1 / 45_000) == "45,000" and one_in(0.3) == "3.3"
        assert one_in(1.0) == "1"

    @pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
    def test_refuses_impossible_distances(self, cal: Calibration, bad: float) -> None:
        with pytest.raises(CalibrationError, match="finite number"):
            cal.false_match_rate(bad)

    def test_false_non_match_rate_from_the_statement_people(self, cal: Calibration) -> None:
        assert cal.false_non_match_rate(0.3) == pytest.approx(1 - 400 / 1000)
        assert cal.false_non_match_rate(0.6) == 0.0


def assert_monotone(cal: Calibration) -> None:
    previous: float | None = None
    below = {cal.false_match_rate(d).phrase() for d in cal.distances if not cal.false_match_rate(d).supported}
    assert len(below) <= 1, below
    if cal.statement.impostor_pairs < cal.min_events:  # nothing measurable: one statement everywhere
        assert below == {phrase for d in cal.distances for phrase in [cal.false_match_rate(d).phrase()]}
        return
    for d in cal.distances:  # increasing distance: the stated "1 in N" may only fall (a higher rate)
        n = stated_one_in(cal.false_match_rate(d).phrase())
        assert previous is None or n <= previous, (d, n, previous)
        previous = n


class TestOneToMany:
    def test_the_issue_example(self) -> None:
        estimate = FalseMatchEstimate(0.5, 1_000, 1_000_000)
        assert LibraryMeaning(estimate, 12_000, 12_000).phrase() == (
            "in a library of 12,000 people, about 12 different people would be expected to score this close by chance"
        )
        assert LibraryMeaning(estimate, 12_000, 12_000).expected == pytest.approx(12.0)

    def test_more_images_than_people_counts_every_image(self) -> None:
        estimate = FalseMatchEstimate(0.5, 1_000, 1_000_000)
        text = LibraryMeaning(estimate, 12_000, 15_000).phrase()
        assert text == (
            "in a library of 12,000 people (15,000 reference images), up to about 15 different people would be "
            "expected to score this close by chance"
        )

    def test_small_libraries_say_how_many_searches(self, cal: Calibration) -> None:
        # 2,030 of 200,030 at 0.510: 30 people expect 0.30 different people, 1 in 3.2 searches
        assert cal.in_library(0.510, 30).phrase() == (
            "in a library of 30 people, a different person would be expected to score this close by chance in "
            "about 1 in 3.2 searches"
        )

    def test_below_the_floor_it_is_a_bound_that_never_weakens(self, cal: Calibration) -> None:
        far = cal.in_library(0.2, 1_000_000)
        assert far.phrase() == (
            "in a library of 1,000,000 people, fewer than 150 different people would be expected to score this "
            "close by chance"
        )  # 1,000,000 * 30 / 200,030 = 149.98, rounded up
        assert cal.in_library(0.0, 1_000_000).phrase() == far.phrase()
        assert cal.in_library(0.0, 100).phrase().endswith("in fewer than 1 in 66 searches")

    def test_closer_never_means_more_people(self, cal: Calibration) -> None:
        expected = [cal.in_library(d, 50_000).expected for d in cal.distances]
        assert all(a <= b for a, b in itertools.pairwise(expected))

    def test_an_empty_library_is_refused(self, cal: Calibration) -> None:
        with pytest.raises(CalibrationError, match="at least one person"):
            cal.in_library(0.5, 0)


class TestThreshold:
    @pytest.mark.parametrize("target", [0.01, 0.003, 0.05])
    def test_the_threshold_is_where_the_upper_bound_meets_the_target_on_derivation_people(
        self, cal: Calibration, target: float
    ) -> None:
        expected = max(
            d
            for d, events in zip(cal.distances, cal.derivation.impostor_at_or_below, strict=True)
            if events >= MIN_EVENTS and clopper_pearson_upper(events, 100_000) <= target
        )
        assert derive_threshold(cal, target) == expected
        events = cal.derivation.impostor_at_or_below[cal.distances.index(expected)]
        assert events / 100_000 < target  # the bound, not the point estimate, meets the target

    def test_known_answer(self, cal: Calibration) -> None:
        # 900 of 100,000 has a 95% upper bound of 0.0096; 1,000 of 100,000 one of 0.0106
        assert derive_threshold(cal, 0.01) == 0.509

    def test_refuses_a_target_the_data_cannot_support(self, cal: Calibration) -> None:
        with pytest.raises(
            CalibrationError, match=r"below what calibration .* can support .*at least 30 false matches"
        ):
            derive_threshold(cal, 1e-4)

    @pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
    def test_refuses_impossible_targets(self, cal: Calibration, bad: float) -> None:
        with pytest.raises(CalibrationError, match="between 0 and 1"):
            derive_threshold(cal, bad)


class TestEquity:
    def test_group_figures_at_the_threshold(self, cal: Calibration) -> None:
        female, asian = cal.group_figures(0.550)
        assert female.name == "sex:female" and (female.false_match.events, female.false_match.pairs) == (150, 300)
        assert female.false_match.phrase() == "about 1 in 2.0" and female.people == 40
        assert asian.false_match.events == 20 and not asian.false_match.supported  # 20 < 30: the floor
        assert asian.false_match.phrase() == f"below 1 in 3.3 ({FLOOR_WORDS})"  # 30 of 100 pairs
        assert female.genuine_missed == 0 and asian.false_non_match_rate == 0.0

    def test_the_caveat_states_each_group_with_counts(self, cal: Calibration) -> None:
        text = cal.equity_caveat(0.550, 0.01)
        assert text.startswith("Equity caveat: at the operating threshold 0.550 (policy target 1 in 100")
        assert "female about 1 in 2.0 (150 of 300 pairs; 40 people)" in text
        assert "Asian: too few people for a figure (6; a figure needs 30)" in text  # the rule of 30, for people
        assert "1 in 3.3" not in text and "Too few people is no evidence that a group's rate is low" in text
        only_female = replace(cal, groups=cal.groups[:1])
        assert "Too few people" not in only_female.equity_caveat(0.550, 0.01)
        assert "Groups: synthetic labels." in text

    def test_automatic_labels_follow_the_hand_labels_in_their_own_sentence(self) -> None:
        """An automatic label set (``race_auto``) covers more people: the caveat states it apart, after the hand labels,
        and no longer sends the reader elsewhere for it."""
        asian_auto = GroupScores(GENUINE[:50], np.r_[np.full(60, 0.45), np.full(940, 1.2)], 45)  # 60 of 1,000: 1 in 16
        cal = make(groups={**GROUPS, "race_auto:Asian": asian_auto})
        text = cal.equity_caveat(0.550, 0.01)
        hand, auto = text.split(" By automatic labels (more people, less reliable labels): ")
        assert "Asian: too few people for a figure (6; a figure needs 30)" in hand and "race_auto" not in text
        assert auto.startswith("Asian about 1 in 16 (60 of 1,000 pairs; 45 people).")
        assert "Too few people is no evidence that a group's rate is low. Groups: synthetic labels." in text
        assert [f.automatic for f in cal.group_figures(0.550)] == [False, False, True]
        assert parse_calibration(cal.to_yaml()).equity_caveat(0.550, 0.01) == text
        with pytest.raises(CalibrationError):
            make(groups={**GROUPS, "race_guess:Asian": asian_auto})  # only "_auto" marks a classifier's labels

    def test_no_groups_no_figures_but_a_caveat(self) -> None:
        derivation = SetScores(GENUINE, DERIVATION_IMPOSTOR, 100, 500, "d")
        statement = SetScores(GENUINE, STATEMENT_IMPOSTOR, 120, 600, "s")
        bare = build_calibration(
            derivation,
            statement,
            model_id="m",
            model_sha256=SHA,
            dataset="x",
            created_by="t",
            images_without_face=0,
            excluded_label_errors=0,
        )
        assert "may differ between groups of people by an unknown amount" in bare.equity_caveat(0.5, 0.01)


class TestPolicyCheck:
    def test_matching_threshold_passes(self, cal: Calibration) -> None:
        assert check_policy_threshold(0.509, cal, 0.01, cal.reference) == 0.509

    @pytest.mark.parametrize(
        ("threshold", "calibration_id", "message"),
        [
            (0.6, None, r"does not match 0\.509"),
            (None, None, "not set"),
            (0.509, "lfw-000000000000", "installed calibration is"),
        ],
    )
    def test_policy_that_disagrees_is_refused(
        self, cal: Calibration, threshold: float | None, calibration_id: str | None, message: str
    ) -> None:
        with pytest.raises(CalibrationError, match=message):
            check_policy_threshold(threshold, cal, 0.01, calibration_id)

    def test_model_mismatch_is_refused(self, cal: Calibration) -> None:
        cal.check_model("test_model", SHA)
        with pytest.raises(CalibrationError, match="re-run make evaluate"):
            cal.check_model("test_model", "cd" * 32)


class TestFile:
    def test_round_trip_is_exact_and_deterministic(self, cal: Calibration, tmp_path: Path) -> None:
        path = tmp_path / "calibration.yaml"
        cal.write(path)
        loaded = load_calibration(path)
        assert loaded == cal and loaded.id == cal.id
        assert loaded.to_yaml() == cal.to_yaml() == make().to_yaml()
        assert loaded.describe_score(0.5105) == cal.describe_score(0.5105)
        assert loaded.equity_caveat(0.55, 0.01) == cal.equity_caveat(0.55, 0.01)

    def test_the_id_is_the_content_hash(self, cal: Calibration) -> None:
        assert re.fullmatch(r"lfw-[0-9a-f]{12}", cal.id) and cal.id == f"lfw-{cal.content_sha256[:12]}"
        assert make().id == cal.id  # the same data: the same id, whenever it is run
        assert make(excluded_label_errors=4).id != cal.id
        assert make(STATEMENT_IMPOSTOR[1:]).id != cal.id
        assert "created" not in cal.to_yaml().replace("created_by", "")  # no dates in the hashed content

    def test_content_names_what_it_applies_to(self, cal: Calibration) -> None:
        text = cal.to_yaml()
        for expected in (f'id: "{cal.id}"', f'model_sha256: "{SHA}"', "format: 2", "min_events: 30", "protocol:"):
            assert expected in text
        assert "  - [0.600, 10000, 1000, 20030, 1000, 300, 100, 20, 10]" in text
        assert text.index("sex:female") < text.index("race:Asian")  # groups in the order given

    def test_format_1_is_refused_with_what_to_do(self) -> None:
        with pytest.raises(CalibrationError, match=r"format 1 is no longer accepted.*re-run make evaluate"):
            parse_calibration("format: 1\nid: lfw-2026-11\n")

    def test_hand_edit_is_detected(self, cal: Calibration) -> None:
        text = cal.to_yaml().replace(
            "  - [0.600, 10000, 1000, 20030, 1000, 300, 100, 20, 10]",
            "  - [0.600, 10000, 1000, 20029, 1000, 300, 100, 20, 10]",
        )
        with pytest.raises(CalibrationError, match="content hash"):
            parse_calibration(text)

    def test_an_id_that_is_not_the_hash_is_refused(self, cal: Calibration) -> None:
        with pytest.raises(CalibrationError, match="is not the content hash"):
            parse_calibration(cal.to_yaml().replace(cal.id, "lfw-0123456789ab"))

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda t: t.replace("format: 2", "format: 3"), "format 3 is not supported"),
            (lambda t: t.replace("min_events: 30\n", "min_events: 30\nextra: 3\n"), "unknown key 'extra'"),
            (lambda t: t.replace('model_id: "test_model"\n', ""), "missing key 'model_id'"),
            (lambda t: t.replace("images: 1100\n", "images: true\n"), "images must be int"),
            (lambda t: re.sub(r"\n  - \[0\.600, [^\n]*", "", t), "without gaps"),
            (lambda t: t.replace("  - [0.600, 10000, 1000,", "  - [0.600, 10000,"), "table row"),
            (lambda t: t.replace("  - [0.600, 10000,", "  - [0.600, 5,"), "non-decreasing"),
            (lambda t: "table: [", "not valid YAML"),
            (lambda t: "- 1\n", "expected a mapping"),
        ],
    )
    def test_malformed_files_are_refused_by_name(self, cal: Calibration, edit: object, message: str) -> None:
        with pytest.raises(CalibrationError, match=message):
            parse_calibration(edit(cal.to_yaml()))  # type: ignore[operator]

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(CalibrationError, match="cannot be read"):
            load_calibration(tmp_path / "absent.yaml")

    def test_bad_fields_are_refused(self) -> None:
        with pytest.raises(CalibrationError, match="model_sha256"):
            make(model_sha256="xyz")
        with pytest.raises(CalibrationError, match="distances must be finite"):
            make(np.array([0.5, np.nan]))


def calibrate_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("calibrate_script", REPO / "scripts" / "calibrate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


class TestShipped:
    """The committed calibration verifies, the shipped policy is derived from it, and a re-run cannot break them."""

    def test_shipped_calibration_is_out_of_sample(self) -> None:
        calibration = load_calibration(REPO / "models" / "calibration.yaml")
        assert (
            calibration.statement.impostor_pairs >= 10_000_000 and calibration.derivation.impostor_pairs >= 10_000_000
        )
        assert calibration.min_events == 30 and calibration.excluded_label_errors > 0
        assert {g.name for g in calibration.groups} >= {"sex:female", "sex:male"}
        assert derive_threshold(calibration, 1e-3) < 0.6  # stricter than dlib's rule of thumb

    def test_shipped_policy_threshold_matches_shipped_calibration(self) -> None:
        calibration = load_calibration(REPO / "models" / "calibration.yaml")
        point = load_default_policy().operating_point
        check_policy_threshold(point.threshold, calibration, point.target_false_match_rate, point.calibration_id)

    def test_installing_the_same_calibration_again_changes_nothing(self, tmp_path: Path) -> None:
        script = calibrate_script()
        models, policies = tmp_path / "models", tmp_path / "policies"
        models.mkdir()
        policies.mkdir()
        for name in ("manifest.yaml", "calibration.yaml"):
            shutil.copy(REPO / "models" / name, models / name)
        shutil.copy(REPO / "policies" / "default.yaml", policies / "default.yaml")
        shipped = load_calibration(REPO / "models" / "calibration.yaml")
        policy = load_default_policy()
        threshold = derive_threshold(shipped, policy.operating_point.target_false_match_rate)
        built = script.Built(shipped, threshold, policy.operating_point.target_false_match_rate, {})
        assert script.install(built, models, policies / "default.yaml", None) == []
        for name in ("manifest.yaml", "calibration.yaml"):
            assert (models / name).read_bytes() == (REPO / "models" / name).read_bytes()
        assert (policies / "default.yaml").read_bytes() == (REPO / "policies" / "default.yaml").read_bytes()

    def test_installing_a_new_calibration_issues_a_new_policy_version(self, tmp_path: Path) -> None:
        script = calibrate_script()
        models, policies = tmp_path / "models", tmp_path / "policies"
        models.mkdir()
        policies.mkdir()
        for name in ("manifest.yaml", "calibration.yaml"):
            shutil.copy(REPO / "models" / name, models / name)
        shutil.copy(REPO / "policies" / "default.yaml", policies / "default.yaml")
        policy_text = (REPO / "policies" / "default.yaml").read_text()
        (policies / "default.yaml").write_text(
            policy_text.replace("target_false_match_rate: 0.001", "target_false_match_rate: 0.01")
        )
        synthetic = make()
        built = script.Built(synthetic, derive_threshold(synthetic, 0.01), 0.01, {})
        with pytest.raises(Exception, match=r"policy's target is 0\.01"):
            script.install(script.Built(synthetic, 0.5, 0.02, {}), models, policies / "default.yaml", None)
        written = script.install(built, models, policies / "default.yaml", None)
        assert len(written) == 3
        assert load_calibration(models / "calibration.yaml") == synthetic
        from engine.faces.models import Manifest

        Manifest.load(models / "manifest.yaml").read_verified(models, "calibration.yaml")  # pinned
        new = load_policy(policies / "default.yaml")
        old = load_default_policy()
        assert new.operating_point.calibration_id == synthetic.id and new.operating_point.threshold == 0.509
        assert new.version == script.next_version(old.version) and new.version != old.version
        assert new.sha256 != old.sha256


class TestSubjectBound:
    """The threshold's bound resamples people: pairs of one look-alike pair of people are not independent."""

    @staticmethod
    def clustered() -> tuple[SetScores, PairSet]:
        """200 people of 4 images (319,600 impostor pairs). Close pairs: 16 pairs of people each bring all 16 of
        their image pairs (256 events, clustered); the rest lie far apart."""
        people = 200
        images = np.full(people, 4, dtype=np.int64)
        a, b, d = [], [], []
        for k in range(16):  # people 2k and 2k+1 look alike: every one of their 16 image pairs is close
            a += [2 * k] * 16
            b += [2 * k + 1] * 16
            d += list(0.40 + 0.004 * k + 0.0001 * np.arange(16))
        close = np.asarray(d)
        total = (800 * 800 - people * 16) // 2
        far = np.full(total - close.size, 1.3)
        scores = SetScores(GENUINE, np.r_[close, far], people, 800, "synthetic clustered folds 1-5")
        pairs = PairSet(
            people=tuple(f"p{i}" for i in range(people)),
            images=images,
            genuine_person=np.zeros(0, dtype=np.int64),
            genuine_distance=np.zeros(0),
            impostor_a=np.asarray(a, dtype=np.int64),
            impostor_b=np.asarray(b, dtype=np.int64),
            impostor_distance=close,
            complete_to=0.5,
        )
        return scores, pairs

    def test_the_subject_bound_is_wider_than_the_pair_bound_and_never_falls(self) -> None:
        _scores, pairs = self.clustered()
        rows = np.round(np.arange(0.40, 0.47, 0.001), 3)
        upper = bootstrap_fmr_upper_bounds(
            pairs.impostor_distance, pairs.impostor_a, pairs.impostor_b, pairs.images, rows, n_boot=400
        )
        assert np.all(np.diff(upper) >= 0)
        events = np.searchsorted(np.sort(pairs.impostor_distance), rows, side="right")
        pair_bound = np.array([clopper_pearson_upper(int(e), 319_600, 0.95) for e in events])
        at = int(np.searchsorted(rows, 0.45))  # about 13 clusters in: 208 events
        assert upper[at] > 1.3 * pair_bound[at], (upper[at], pair_bound[at])

    def test_the_file_carries_it_and_the_threshold_is_chosen_with_it(self) -> None:
        scores, pairs = self.clustered()
        statement = SetScores(GENUINE, STATEMENT_IMPOSTOR, 120, 600, "synthetic folds 6-10")
        plain = build_calibration(
            scores, statement, model_id="m", model_sha256=SHA, dataset="s", created_by="t", images_without_face=0,
            excluded_label_errors=0,
        )  # fmt: skip
        bounded = build_calibration(
            scores, statement, model_id="m", model_sha256=SHA, dataset="s", created_by="t", images_without_face=0,
            excluded_label_errors=0, derivation_pairs=pairs, n_boot=400,
        )  # fmt: skip
        bound = bounded.derivation_bound
        assert plain.derivation_bound is None and bound is not None
        assert bounded.derivation.impostor_at_or_below[bound.first_row] >= MIN_EVENTS
        assert "prediction bound for the FMR of 120 other people" in bound.method
        assert "(400 resamples of the derivation people" in bound.method
        again = parse_calibration(bounded.to_yaml())
        assert again.derivation_bound == bound and again.id == bounded.id != plain.id
        target = 1e-3
        assert derive_threshold(bounded, target) < derive_threshold(plain, target)
        chosen = round(derive_threshold(bounded, target) / 0.001)
        assert bound.at(chosen) is not None and bound.at(chosen) <= target < bound.at(chosen + 1)  # type: ignore[operator]
        last = bounded.distances[bound.first_row + len(bound.upper) - 1]
        assert derive_threshold(bounded, 0.5) == last  # never beyond the rows the bootstrap covers
        falling = bounded.to_yaml().replace('"upper": [', '"upper": [0.9, ', 1)
        with pytest.raises(CalibrationError, match=r"never fall|content hash"):
            parse_calibration(falling)

    def test_the_bound_predicts_a_second_sample_of_people(self) -> None:
        """Known answer: the FMR plus sqrt(1 + n/m) times the bootstrap's margin, for n derivation and m new people."""
        scores, pairs = self.clustered()  # 200 derivation people
        rows = np.round(np.arange(0.0, 0.47, 0.001), 3)
        events = np.searchsorted(np.sort(pairs.impostor_distance), rows, side="right")
        first = int(np.searchsorted(events, MIN_EVENTS))
        upper = bootstrap_fmr_upper_bounds(
            pairs.impostor_distance, pairs.impostor_a, pairs.impostor_b, pairs.images, rows[first:], n_boot=400
        )
        rate = events[first:] / np.asarray(scores.impostor).size
        for new_people, widen in ((200, math.sqrt(2.0)), (50, math.sqrt(5.0)), (10**9, 1.0)):
            statement = SetScores(GENUINE, STATEMENT_IMPOSTOR, new_people, 600, "synthetic folds 6-10")
            cal = build_calibration(
                scores, statement, model_id="m", model_sha256=SHA, dataset="s", created_by="t",
                images_without_face=0, excluded_label_errors=0, derivation_pairs=pairs, n_boot=400,
            )  # fmt: skip
            bound = cal.derivation_bound
            assert bound is not None and bound.first_row == first
            got = np.asarray(bound.upper[: rows.size - first])
            expected = np.maximum.accumulate(rate + widen * (upper - rate))
            assert np.all(got >= expected) and np.allclose(got, expected, rtol=1e-5), new_people
            assert f"= {widen:.3f} times" in bound.method
        assert np.all(upper > rate)  # a margin to widen: the sqrt(2) bound lies above the confidence bound
