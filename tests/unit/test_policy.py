"""The policy as data: loading, every validation message with its key path, approval rules, schema in sync."""

from __future__ import annotations

import copy
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import PolicyError, RfrError
from engine.policy import (
    SubjectFactors,
    default_policy_path,
    load_default_policy,
    load_policy,
    load_policy_text,
    parse_policy,
    policy_json_schema,
    render_policy_schema,
    required_approval,
)
from engine.policy.store import MIGRATIONS as POLICY_MIGRATIONS
from engine.policy.store import record_policy, recorded_policy
from engine.schema import apply_all

REPO = Path(__file__).resolve().parents[2]
POLICE_RANKS = [
    "Constable",
    "Sergeant",
    "Inspector",
    "Chief Inspector",
    "Superintendent",
    "Chief Superintendent",
    "Assistant Chief Constable",
    "Deputy Chief Constable",
    "Chief Constable",
]
AGE_BANDS = ["under13", "13-15", "16-17", "adult", "unknown"]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The default policy as parsed YAML, to mutate per test."""
    return yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))


def problems_of(data: Any) -> tuple[str, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    return caught.value.problems


# Loading the default


def test_default_policy_loads_with_version_and_hash() -> None:
    policy = load_default_policy()
    assert policy.version == "2026.6"
    assert re.fullmatch(r"[0-9a-f]{64}", policy.sha256)
    assert load_default_policy().sha256 == policy.sha256


def test_hash_ignores_comments_and_layout_but_not_content() -> None:
    text = default_policy_path().read_text(encoding="utf-8")
    base = load_policy_text(text).sha256
    assert load_policy_text("# a new comment\n" + text).sha256 == base
    reflowed = yaml.safe_dump(yaml.safe_load(text), sort_keys=True, width=60)
    assert load_policy_text(reflowed).sha256 == base
    changed = text.replace("candidate_list_size: 20", "candidate_list_size: 21")
    assert changed != text
    assert load_policy_text(changed).sha256 != base


def test_the_eight_permitted_use_cases_in_the_policys_words() -> None:
    policy = load_default_policy()
    titles = {c.key: c.title for c in policy.use_cases}
    expected_words = {
        "identify_unknown_subject": "Identify an unknown subject of an image",
        "find_other_imagery": "Temporary Image Reference Library",
        "locate_missing_person": "Locate a missing person",
        "exploited_children": "Identify and find exploited children",
        "unwilling_or_false_identity": "where fingerprint powers are not available",
        "deceased_or_incapacitated": "Identify a deceased person",
        "custody_safeguarding": "Custody safeguarding",
        "public_safety_threat": "Mitigate a threat to public safety",
    }
    assert list(titles) == list(expected_words)
    for key, words in expected_words.items():
        assert words in titles[key]
    assert policy.use_case("exploited_children").key == "exploited_children"
    with pytest.raises(PolicyError, match="unknown use case 'shoplifting': choose one of identify_unknown_subject"):
        policy.use_case("shoplifting")


def test_rank_ladder_orders_police_ranks_and_maps_staff_grades() -> None:
    policy = load_default_policy()
    assert [r.name for r in policy.ranks] == POLICE_RANKS
    for level, name in enumerate(POLICE_RANKS):
        assert policy.rank_level(name) == level
    for rank in policy.ranks:
        for staff in rank.staff_equivalents:
            assert policy.rank_level(staff) == policy.rank_level(rank.name)
            assert policy.police_rank(staff) == rank.name
    assert policy.rank_at_least("Police Staff Band C", "Inspector")
    assert not policy.rank_at_least("Police Staff Band D", "Inspector")
    assert policy.rank_at_least("Chief Superintendent", "Superintendent")
    with pytest.raises(PolicyError, match="unknown rank 'Inspecter'"):
        policy.rank_level("Inspecter")


def test_settings_mirror_the_policy() -> None:
    policy = load_default_policy()
    assert policy.approval.min_rank == "Inspector"
    assert policy.search.candidate_list_size == 20
    assert policy.retention.no_viable_match_probe_data == "delete_immediately"
    assert "intelligence lead only" in policy.score_display.intelligence_lead_statement
    assert "not evidence" in policy.score_display.intelligence_lead_statement
    assert policy.lockout.max_failed_attempts == 5 and policy.lockout.lock_minutes == 15
    assert policy.sessions.idle_timeout_minutes == 10
    assert policy.retention.case_expiry_days.draft == 7 and policy.accounts.request_valid_hours == 24
    assert [c.key for c in policy.pre_rfr_checks] == [
        "local_intelligence",
        "circulation",
        "other_enquiries",
        "biometric_identification",
    ]
    # The policy's own words: use case 2 finds other imagery in a Temporary Image Reference Library.
    assert policy.use_case("find_other_imagery").library_kinds == ("temporary",)
    assert policy.use_case("identify_unknown_subject").library_kinds == ("substantive", "temporary")
    assert policy.flag("technical_advice").requires_recorded_advice
    point = policy.operating_point
    assert point.target_false_match_rate == 0.001
    # Derived from models/calibration.yaml; test_calibration checks the two agree.
    assert point.calibration_id == "lfw-c5b79f5884c9" and point.threshold == 0.536 and point.is_calibrated


# Approval rules: every age band x disability x pre-reassignment combination


def oracle(age_band: str, disability: bool, pre_reassignment: bool) -> tuple[str, set[str]]:
    """DOMAIN.md's approval rules, written independently of the policy file."""
    rank = "Superintendent" if age_band == "under13" else "Inspector"
    flags = {"technical_advice"} if disability or pre_reassignment else set()
    return rank, flags


@pytest.mark.parametrize("age_band", AGE_BANDS)
@pytest.mark.parametrize("disability", [False, True])
@pytest.mark.parametrize("pre_reassignment", [False, True])
def test_required_approval_for_every_combination(age_band: str, disability: bool, pre_reassignment: bool) -> None:
    policy = load_default_policy()
    min_rank, flags, reasons = required_approval(policy, SubjectFactors(age_band, disability, pre_reassignment))
    expected_rank, expected_flags = oracle(age_band, disability, pre_reassignment)
    assert min_rank == expected_rank
    assert set(flags) == expected_flags and len(flags) == len(set(flags))
    assert reasons[0] == policy.approval.reason
    joined = " ".join(reasons)
    assert ("under 13" in joined) == (age_band == "under13")
    assert ("under 16" in joined) == (age_band in ("under13", "13-15"))
    assert ("relevant disability" in joined) == disability
    assert ("gender reassignment" in joined) == pre_reassignment


@pytest.mark.parametrize(
    ("age_band", "monitoring"),
    [
        ("under13", ("under_18", "under_16")),
        ("13-15", ("under_18", "under_16")),
        ("16-17", ("under_18",)),
        ("adult", ()),
        ("unknown", ()),
    ],
)
def test_monitoring_flags(age_band: str, monitoring: tuple[str, ...]) -> None:
    assert load_default_policy().monitoring_flags(age_band) == monitoring


def test_unknown_age_band_is_refused_with_the_choices() -> None:
    with pytest.raises(PolicyError, match="unknown age band 'under12': choose one of under13, 13-15"):
        load_default_policy().required_approval(SubjectFactors("under12"))


def test_a_raised_rule_wins_whatever_its_position(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["approval"]["rules"].reverse()
    policy = parse_policy(data)
    assert policy.required_approval(SubjectFactors("under13", True, True)).min_rank == "Superintendent"


# Validation: every message with its key path


def rule(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["approval"]["rules"][i]


def setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted/indexed path (``approval.rules[2].min_rank``) in the data."""

    def apply(data: dict[str, Any]) -> None:
        *parents, last = re.findall(r"[^.\[\]]+", path)
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return apply


DELETE = object()

# name, tampering, expected problem, structural (the JSON Schema also refuses it)
INVALID_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, bool]] = [
    (
        "misspelt rank in a rule",
        setter("approval.rules[2].min_rank", "Inspecter"),
        "approval.rules[2].min_rank: unknown rank 'Inspecter' (did you mean 'Inspector'?)",
        False,
    ),
    (
        "unknown default rank",
        setter("approval.min_rank", "Commander"),
        "approval.min_rank: unknown rank 'Commander' (known: Constable, Police Staff Band E, Sergeant",
        False,
    ),
    (
        "rule below the default",
        setter("approval.rules[0].min_rank", "Sergeant"),
        "approval.rules[0].min_rank: 'Sergeant' is below approval.min_rank 'Inspector'; "
        "a rule can only raise the approving rank",
        False,
    ),
    (
        "unknown age band in a rule",
        setter("approval.rules[0].when.age_bands[1]", "under12"),
        "approval.rules[0].when.age_bands[1]: unknown age band 'under12' (did you mean 'under13'?)",
        False,
    ),
    (
        "unknown flag in a rule",
        setter("approval.rules[3].flags[0]", "legal_advice"),
        "approval.rules[3].flags[0]: unknown flag 'legal_advice' (known: technical_advice)",
        False,
    ),
    (
        "rule with no condition",
        setter("approval.rules[1].when", {}),
        "approval.rules[1].when: names no condition; put a rule for every case in approval.min_rank",
        False,
    ),
    (
        "rule with an empty age band list",
        setter("approval.rules[1].when.age_bands", []),
        "approval.rules[1].when.age_bands: an empty list never matches; name at least one age band",
        False,
    ),
    (
        "duplicate rule name",
        setter("approval.rules[3].name", "under_16"),
        "approval.rules[3].name: 'under_16' is already used by approval.rules[0]",
        False,
    ),
    (
        "duplicate use case key",
        setter("use_cases[1].key", "identify_unknown_subject"),
        "use_cases[1].key: 'identify_unknown_subject' is already used by use_cases[0]",
        False,
    ),
    (
        "staff grade that repeats a rank",
        setter("ranks[1].staff_equivalents[0]", "Constable"),
        "ranks[1].staff_equivalents[0]: 'Constable' is already on the ladder at ranks[0].name",
        False,
    ),
    (
        "under 16 but not under 18",
        setter("age_bands[1].under_18", False),
        "age_bands[1].under_18: must be true when under_16 is true",
        False,
    ),
    (
        "threshold without calibration",
        setter("operating_point.calibration_id", None),
        "operating_point.threshold: set without operating_point.calibration_id; "
        "the threshold must be derived from a calibration, leave it null until one exists",
        False,
    ),
    ("missing key", setter("search.candidate_list_size", DELETE), "search.candidate_list_size: missing", True),
    (
        "misspelt key",
        setter("search.candidate_list_sise", 20),
        "search.candidate_list_sise: unknown key (did you mean 'candidate_list_size'?)",
        True,
    ),
    (
        "text for a number",
        setter("search.candidate_list_size", "twenty"),
        "search.candidate_list_size: expected a whole number, got text 'twenty'",
        True,
    ),
    (
        "boolean for a number",
        setter("lockout.max_failed_attempts", True),
        "lockout.max_failed_attempts: expected a whole number, got true",
        True,
    ),
    (
        "fraction for a whole number",
        setter("lockout.lock_minutes", 2.5),
        "lockout.lock_minutes: expected a whole number, got 2.5",
        True,
    ),
    (
        "below minimum",
        setter("search.candidate_list_size", 0),
        "search.candidate_list_size: must be at least 1, got 0",
        True,
    ),
    (
        "above maximum",
        setter("sessions.idle_timeout_minutes", 1000),
        "sessions.idle_timeout_minutes: must be at most 240, got 1000",
        True,
    ),
    (
        "zero false-match rate",
        setter("operating_point.target_false_match_rate", 0),
        "operating_point.target_false_match_rate: must be more than 0.0, got 0.0",
        True,
    ),
    (
        "YAML 1.1 reads 1e-3 as text",
        setter("operating_point.target_false_match_rate", "1e-3"),
        "operating_point.target_false_match_rate: expected a number, got text '1e-3'",
        True,
    ),
    (
        "unknown score display",
        setter("score_display.show", "percent"),
        "score_display.show: text 'percent' is not one of: estimated_false_match_rate, similarity, hidden",
        True,
    ),
    (
        "retention that keeps unmatched biometrics",
        setter("retention.no_viable_match_probe_data", "keep"),
        "retention.no_viable_match_probe_data: must be 'delete_immediately', got text 'keep'",
        True,
    ),
    ("unknown format", setter("format", 2), "format: must be 1, got 2", True),
    ("null version", setter("version", None), "version: must not be null", True),
    ("empty title", setter("use_cases[0].title", "  "), "use_cases[0].title: must not be empty", True),
    (
        "key with spaces",
        setter("use_cases[0].key", "Bad Key"),
        "use_cases[0].key: 'Bad Key' is not a valid key: use lowercase letters, digits and '_', starting with a letter",
        True,
    ),
    ("no use cases", setter("use_cases", []), "use_cases: needs at least 1 item(s)", True),
    ("mapping for a list", setter("use_cases", {"a": 1}), "use_cases: expected a list, got a mapping", True),
    ("list for a mapping", setter("search", [20]), "search: expected a mapping, got a list", True),
    (
        "flag as a boolean text",
        setter("approval.rules[2].when.relevant_disability", "yes"),
        "approval.rules[2].when.relevant_disability: expected true or false, got text 'yes'",
        True,
    ),
]


@pytest.mark.parametrize(
    ("tamper", "expected"), [(c[1], c[2]) for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_each_invalid_policy_names_its_key_path(
    raw: dict[str, Any], tamper: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = copy.deepcopy(raw)
    tamper(data)
    problems = problems_of(data)
    assert any(p.startswith(expected) for p in problems), problems
    assert len(problems) == 1, problems


def test_the_issues_example_message(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["approval"]["rules"][2]["min_rank"] = "Inspecter"
    with pytest.raises(PolicyError, match=re.escape("approval.rules[2].min_rank: unknown rank 'Inspecter'")):
        parse_policy(data)


def test_every_problem_is_reported_at_once_on_one_line(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["search"]["candidate_list_size"] = 0
    data["lockout"]["lock_minutes"] = "long"
    data["colour"] = "blue"
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    assert len(caught.value.problems) == 3
    assert "\n" not in caught.value.diagnostics()
    assert isinstance(caught.value, RfrError)


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of(["a list"]) == ("(top level): expected a mapping, got a list",)


def test_calibrated_threshold_is_accepted(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["operating_point"].update(calibration_id="cal-2025-01", threshold=0.52)
    assert parse_policy(data).operating_point.is_calibrated


# Files and YAML


def test_load_policy_names_the_file(tmp_path: Path, raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["approval"]["rules"][2]["min_rank"] = "Inspecter"
    path = tmp_path / "force.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(PolicyError, match=re.escape(f"policy {path}: approval.rules[2].min_rank: unknown rank")):
        load_policy(path)


def test_duplicate_yaml_keys_are_refused() -> None:
    text = (
        default_policy_path()
        .read_text(encoding="utf-8")
        .replace("  min_rank: Inspector\n", "  min_rank: Inspector\n  min_rank: Constable\n", 1)
    )
    with pytest.raises(PolicyError, match=r"line \d+: duplicate key 'min_rank'"):
        load_policy_text(text, source="dup.yaml")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"approval: [unclosed\n", r"not valid YAML at line \d+"),
        (b"\xff\xfe not utf-8", "not UTF-8 text"),
        (b"x" * 1_000_001, "larger than 1000000 bytes"),
        (b"", r"\(top level\): the policy is empty"),
        (b"# only a comment\n", r"\(top level\): the policy is empty"),
    ],
)
def test_bad_files_are_refused_with_a_message(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(PolicyError, match=expected):
        load_policy(path)


def test_missing_file() -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy("/nonexistent/policy.yaml")


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_mutation_is_accepted_or_refused_cleanly(data: st.DataObject, raw: dict[str, Any]) -> None:
    """Replacing any node with junk gives a Policy or a PolicyError, never a crash."""
    doc = copy.deepcopy(raw)
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, child in items:
            paths.append((node, key))
            walk(child)

    walk(doc)
    parent, key = data.draw(st.sampled_from(paths))
    junk = st.recursive(
        st.none() | st.booleans() | st.integers(-5, 500) | st.floats(allow_nan=True) | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )
    parent[key] = data.draw(junk)
    try:
        parse_policy(doc)
    except PolicyError as exc:
        assert exc.problems and all(": " in p for p in exc.problems)


# The JSON Schema


def test_committed_schema_is_in_sync() -> None:
    committed = (REPO / "policies" / "schema.json").read_text(encoding="utf-8")
    assert committed == render_policy_schema(), (
        "policies/schema.json is stale: run "
        ".venv/bin/python -W ignore -m engine.policy.json_schema > policies/schema.json"
    )


def schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "") -> list[str]:
    """A validator for the JSON Schema keywords the generator emits (no jsonschema dependency)."""
    if "$ref" in schema:
        return schema_errors(value, root["$defs"][schema["$ref"].split("/")[-1]], root, path)
    errors: list[str] = []
    for sub in schema.get("allOf", []):
        errors += schema_errors(value, sub, root, path)
    if "anyOf" in schema and all(schema_errors(value, s, root, path) for s in schema["anyOf"]):
        errors.append(f"{path}: matches no option")
    if "const" in schema and not (value == schema["const"] and type(value) is type(schema["const"])):
        errors.append(f"{path}: const")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: enum")
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](value):
        return [*errors, f"{path}: type {kind}"]
    if kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        for name, item in value.items():
            if name in schema["properties"]:
                errors += schema_errors(item, schema["properties"][name], root, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{name}: additional")
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: minItems")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: minLength")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: pattern")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: maximum")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{path}: exclusiveMinimum")
    return errors


def test_default_policy_satisfies_the_schema(raw: dict[str, Any]) -> None:
    schema = policy_json_schema()
    assert schema_errors(raw, schema, schema) == []


@pytest.mark.parametrize(
    ("tamper", "structural"),
    [(c[1], c[3]) for c in INVALID_CASES if c[0] != "empty title"],
    ids=[c[0] for c in INVALID_CASES if c[0] != "empty title"],
)
def test_schema_and_loader_agree_on_structure(
    raw: dict[str, Any], tamper: Callable[[dict[str, Any]], None], structural: bool
) -> None:
    """Structural mistakes fail the schema too; cross-reference mistakes are the loader's alone."""
    data = copy.deepcopy(raw)
    tamper(data)
    schema = policy_json_schema()
    assert bool(schema_errors(data, schema, schema)) == structural


# Recording the policy a case was decided under


def test_recorded_policy_round_trips_and_detects_tampering() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_all(conn, POLICY_MIGRATIONS)
    policy = load_default_policy()
    record_policy(conn, policy)
    record_policy(conn, policy)
    assert conn.execute("SELECT COUNT(*) FROM policy_versions").fetchone()[0] == 1
    again = recorded_policy(conn, policy.sha256)
    assert again == policy and again.sha256 == policy.sha256
    conn.execute(
        "UPDATE policy_versions SET canonical_json = "
        "replace(canonical_json, '\"candidate_list_size\":20', '\"candidate_list_size\":200')"
    )
    with pytest.raises(PolicyError, match="does not match its hash"):
        recorded_policy(conn, policy.sha256)
    with pytest.raises(PolicyError, match="no policy with hash"):
        recorded_policy(conn, "0" * 64)


@pytest.mark.parametrize(
    ("text", "tier", "problem"),
    [
        ("n/a", "short", "'n/a' is not an answer"),
        ("None.", "short", "'None.' is not an answer"),
        ("See above", "short", "'See above' is not an answer"),
        ("xxxxxxxxxxxx", "short", "too little said"),
        ("ok", "short", "too short"),
        ("checked it all", "short", None),
        ("aaaaaaaaaaaaaaaa aab aac", "short", "not written text"),
        ("PNC and local intelligence searched, no trace", "short", None),
        ("because it is needed", "reasoning", "too short"),
        ("The probe and the reference agree on ear shape, nose and the scar over the eye.", "reasoning", None),
    ],
)
def test_text_rules_tell_an_answer_from_a_placeholder(text: str, tier: str, problem: str | None) -> None:
    found = load_default_policy().text_rules.problem(text, tier)  # type: ignore[arg-type]
    assert found == problem or (problem is not None and found is not None and problem in found)
