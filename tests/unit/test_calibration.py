"""Calibration: distance -> false-match rate, the refusal to claim unsupported rates, the file, the policy check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import CalibrationError, RfrError
from engine.evaluation.calibration import build_calibration
from engine.policy import OperatingPoint, load_default_policy
from engine.scoring.calibration import (
    Calibration,
    check_policy_threshold,
    derive_threshold,
    load_calibration,
    parse_calibration,
)

REPO = Path(__file__).resolve().parents[2]
SHA = "ab" * 32

# 10,000 impostor distances: ten at each grid midpoint 0.5005, 0.5015, ..., 1.4995, so exactly
# 10 * m of them lie at or below 0.5 + m/1000. Genuine: 1,000 spread over 0.1005 ... 0.5995.
IMPOSTOR = np.repeat(0.5005 + 0.001 * np.arange(1000), 10)
GENUINE = 0.1005 + 0.0005 * np.arange(1000)


def make(**changes: object) -> Calibration:
    fields: dict[str, object] = {
        "id": "synthetic-2026-11",
        "version": 1,
        "model_id": "test_model",
        "model_sha256": SHA,
        "dataset": "synthetic",
        "created": "2026-11-22",
        "created_by": "tests/unit/test_calibration.py",
        "subjects": 100,
        "images": 200,
        "images_without_face": 0,
    }
    fields.update(changes)
    return build_calibration(GENUINE, IMPOSTOR, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cal() -> Calibration:
    return make()


class TestTable:
    def test_counts_on_the_grid(self, cal: Calibration) -> None:
        assert cal.distances[0] == 0.0 and cal.impostor_pairs == 10_000 and cal.genuine_pairs == 1_000
        row = cal.distances.index(0.6)
        assert cal.impostor_at_or_below[row] == 1_000
        assert cal.genuine_at_or_below[row] == 1_000
        assert cal.impostor_at_or_below[-1] == 10_000 and cal.distances[-1] == 1.5

    def test_rate_on_and_between_grid_points(self, cal: Calibration) -> None:
        assert cal.false_match_rate(0.6).rate == pytest.approx(0.1)
        assert cal.false_match_rate(0.5105).rate == pytest.approx(0.0105)  # 100 + half of 10, interpolated
        assert cal.false_match_rate(2.0).rate == 1.0

    def test_describe_score(self, cal: Calibration) -> None:
        # 0.515625 lies 5/8 of the way from 0.515 (150 pairs) to 0.516 (160 pairs): 156.25 of 10,000 = 1 in 64.
        assert cal.describe_score(0.515625) == (
            "estimated false-match rate about 1 in 64 (distance 0.516; calibration synthetic-2026-11 v1)"
        )
        assert "about 1 in 10 " in cal.describe_score(0.6)

    def test_no_made_up_rate_below_three_pairs(self, cal: Calibration) -> None:
        """Nothing scored this close: say "fewer than 1 in N/3" (the rule of three), never a number."""
        estimate = cal.false_match_rate(0.45)
        assert estimate.rate is None and not estimate.supported
        assert estimate.upper_bound == pytest.approx(3 / 10_000, rel=0.01)
        text = cal.describe_score(0.45)
        assert text.startswith("estimated false-match rate fewer than 1 in 3,300 ")
        assert "0 of 10,000" in text

    def test_a_few_pairs_give_a_bound_not_a_rate(self, cal: Calibration) -> None:
        estimate = cal.false_match_rate(0.5002)  # 2 pairs, interpolated: below min_events
        assert estimate.rate is None and estimate.upper_bound > 2 / 10_000
        assert cal.false_match_rate(0.5003).rate == pytest.approx(3 / 10_000)

    @given(st.floats(0, 2), st.floats(0, 2))
    def test_monotone(self, d1: float, d2: float) -> None:
        cal = make()
        lo, hi = sorted((d1, d2))
        a, b = cal.false_match_rate(lo), cal.false_match_rate(hi)
        assert a.impostor_pairs_this_close <= b.impostor_pairs_this_close
        assert a.upper_bound <= b.upper_bound + 1e-15

    def test_false_non_match_rate(self, cal: Calibration) -> None:
        assert cal.false_non_match_rate(0.6) == 0.0
        assert cal.false_non_match_rate(0.35) == pytest.approx(0.5)

    @pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
    def test_refuses_impossible_distances(self, cal: Calibration, bad: float) -> None:
        with pytest.raises(CalibrationError, match="distance"):
            cal.describe_score(bad)


class TestThreshold:
    @pytest.mark.parametrize(
        ("target", "expected"), [(0.01, 0.51), (0.0105, 0.51), (0.0099, 0.509), (0.1, 0.6), (0.5, 1.0)]
    )
    def test_derived_threshold(self, cal: Calibration, target: float, expected: float) -> None:
        threshold = derive_threshold(cal, target)
        assert threshold == expected
        assert cal.false_match_rate(threshold).rate is not None
        assert (cal.false_match_rate(threshold).rate or 1.0) <= target

    def test_refuses_a_target_the_data_cannot_support(self, cal: Calibration) -> None:
        with pytest.raises(CalibrationError, match="below what calibration synthetic-2026-11 v1 can support"):
            derive_threshold(cal, 2e-4)  # 2 pairs of 10,000: fewer than 3
        assert derive_threshold(cal, 3e-4) == 0.5

    @pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, math.nan])
    def test_refuses_impossible_targets(self, cal: Calibration, bad: float) -> None:
        with pytest.raises(CalibrationError, match="between 0 and 1"):
            derive_threshold(cal, bad)


class TestPolicyCheck:
    def test_matching_threshold_passes(self, cal: Calibration) -> None:
        assert check_policy_threshold(0.51, cal, 0.01, cal.reference) == 0.51

    @pytest.mark.parametrize(
        ("threshold", "calibration_id", "message"),
        [
            (0.6, "synthetic-2026-11.v1", "does not match 0.510"),
            (0.5101, "synthetic-2026-11.v1", "does not match"),
            (None, "synthetic-2026-11.v1", "not set"),
            (0.51, "synthetic-2026-11.v2", "installed calibration"),
        ],
    )
    def test_policy_that_disagrees_is_refused(
        self, cal: Calibration, threshold: float | None, calibration_id: str, message: str
    ) -> None:
        point = OperatingPoint(target_false_match_rate=0.01, calibration_id=calibration_id, threshold=threshold)
        with pytest.raises(CalibrationError, match=message) as caught:
            check_policy_threshold(point.threshold, cal, point.target_false_match_rate, point.calibration_id)
        assert isinstance(caught.value, RfrError) and "\n" not in caught.value.diagnostics()

    def test_model_mismatch_is_refused(self, cal: Calibration) -> None:
        cal.check_model("test_model", SHA)
        with pytest.raises(CalibrationError, match="recalibrate"):
            cal.check_model("test_model", "cd" * 32)


class TestFile:
    def test_round_trip_is_exact_and_deterministic(self, cal: Calibration, tmp_path: Path) -> None:
        path = tmp_path / "calibration.yaml"
        cal.write(path)
        loaded = load_calibration(path)
        assert loaded == cal
        assert loaded.to_yaml() == cal.to_yaml() == make().to_yaml()
        assert loaded.content_sha256 == cal.content_sha256
        assert loaded.describe_score(0.5105) == cal.describe_score(0.5105)

    def test_content_names_what_it_applies_to(self, cal: Calibration) -> None:
        text = cal.to_yaml()
        for expected in ('id: "synthetic-2026-11"', f'model_sha256: "{SHA}"', "impostor_pairs: 10000", "created_by:"):
            assert expected in text
        assert "  - [0.600, 1000, 1000]" in text

    def test_hand_edit_is_detected(self, cal: Calibration) -> None:
        text = cal.to_yaml().replace("  - [0.600, 1000, 1000]", "  - [0.600, 999, 1000]")
        with pytest.raises(CalibrationError, match="content hash"):
            parse_calibration(text)

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda t: t.replace("format: 1", "format: 2"), "format 2 is not supported"),
            (lambda t: t.replace("version: 1\n", "version: 1\nextra: 3\n"), "unknown key 'extra'"),
            (lambda t: t.replace('model_id: "test_model"\n', ""), "missing key 'model_id'"),
            (lambda t: t.replace("version: 1\n", "version: true\n"), "version must be int"),
            (lambda t: t.replace("  - [0.600, 1000, 1000]", "  - [0.600, 5, 1000]"), "non-decreasing"),
            (lambda t: t.replace("  - [0.600, 1000, 1000]\n", ""), "without gaps"),
            (lambda t: t.replace("  - [0.600, 1000, 1000]", "  - [0.600, 1000]"), "table row"),
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
        with pytest.raises(CalibrationError, match="id"):
            make(id="Bad Id")
        with pytest.raises(CalibrationError, match="model_sha256"):
            make(model_sha256="xyz")


class TestShipped:
    """The committed calibration verifies, and the shipped policy's threshold is the one it derives."""

    def test_shipped_calibration_loads(self) -> None:
        calibration = load_calibration(REPO / "models" / "calibration.yaml")
        assert calibration.impostor_pairs >= 10_000_000
        assert derive_threshold(calibration, 1e-3) < 0.6  # stricter than dlib's rule of thumb

    def test_shipped_policy_threshold_matches_shipped_calibration(self) -> None:
        calibration = load_calibration(REPO / "models" / "calibration.yaml")
        point = load_default_policy().operating_point
        check_policy_threshold(point.threshold, calibration, point.target_false_match_rate, point.calibration_id)
