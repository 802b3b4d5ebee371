"""Property-based: random sequences of casework actions by random users never break the policy's invariants.

Each example drives 1 to 50 actions (open, record advice, submit, approve, reject, search,
adjudicate, peer review, close, withdraw, and an engineer changing a library under an approved
case) by people drawn from a cast that includes the awkward ones: an RFR User who is also an
approver (may not approve their own case), an RFR User who is also a peer reviewer (may not
review their own adjudication), an Inspector facing under-13 cases, an engineer and an auditor.
Refusals are expected; after every action the invariants are checked against the database and
the audit log, and the chain must verify at the end of every example. Among them (issue 14): no
search with a library changed since its approval; no probe template held after a "no viable
match" review or a withdrawal; nobody acts without a named user.

One terminal (synthetic face engine, fast scrypt) serves every example; each example opens its
own cases.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import audit
from engine.casework import CaseState, MatchReport, Outcome, SubmissionForm, probe_template
from engine.errors import RfrError
from engine.policy import Policy, load_default_policy
from engine.policy.model import Search
from engine.terminal import Terminal
from tests.synthetic import SyntheticFaceEngine, synthetic_jpeg, write_subject_folders
from tests.terminals import ENGINEERS, PASSWORD, make_terminal, provision

CAST: dict[str, tuple[list[str], str | None]] = {
    "alice": (["rfr_user"], "Constable"),
    "bob": (["rfr_user", "approver"], "Inspector"),
    "ivan": (["approver"], "Inspector"),
    "sue": (["approver"], "Superintendent"),
    "pat": (["peer_reviewer"], None),
    "rita": (["rfr_user", "peer_reviewer"], "Sergeant"),
    "eve": (["engineer"], None),
    "ann": (["auditor"], None),
}
REPORT = MatchReport.from_mapping(
    {
        "factors": {
            key: {"relevant": key == "probe_image_quality", "assessment": "considered side by side"}
            for key in ("probe_image_quality", "reference_image_quality", "time_lapse", "lighting", "other")
        },
        "reasoning": "The eyes, nose, mouth and ear shapes agree; nothing unexplained differs between them.",
    }
)
CHECKS = {
    "local_intelligence": ("exhausted", "Local intelligence searched, no trace"),
    "circulation": ("exhausted", "Circulated to local teams, nobody knew him"),
    "other_enquiries": ("exhausted", "Witnesses and shop records checked"),
    "biometric_identification": ("unviable", "No fingerprints or DNA at the scene"),
}
# What the terminal may do by itself under the policy; every other event is a named person's.
SYSTEM_ACTIONS = {
    "workspace.create",
    "user.bootstrap",
    "case.expire",
    "case.approval_lapsed",
    "case.close",
    "case.probe_deleted",
    "library.purge",
    "library.index_rebuilt",
    "library.index_caught_up",
    "library.index_tuned",
    "library.index_tuning_lapsed",
    "user.request_lapsed",
}


@dataclass
class Shared:
    terminal: Terminal
    policy: Policy
    engine: SyntheticFaceEngine
    root: Path

    @property
    def cases(self) -> Any:
        return self.terminal.cases

    @property
    def ws(self) -> Any:
        return self.terminal.ws


_shared: Shared | None = None


def shared() -> Shared:
    """One workspace for the whole run (kept in a temporary folder for the life of the process)."""
    global _shared
    if _shared is None:
        # In memory where the machine has it: every commit fsyncs, and these are synthetic images only.
        shm = Path("/dev/shm")
        root = Path(tempfile.mkdtemp(prefix="rfr-casework-props-", dir=shm if shm.is_dir() else None))
        policy = replace(load_default_policy(), search=Search(candidate_list_size=2))
        engine = SyntheticFaceEngine()
        terminal = make_terminal(root / "ws", engine=engine, policy=policy)
        sessions = provision(terminal, CAST)
        for name, seed in (("custody", 0), ("other", 5)):
            terminal.libraries.create(sessions[ENGINEERS[0]], name, "substantive")
            write_subject_folders(root / name, {f"{name}-{i}": 1 for i in range(3)}, seed=seed)
            terminal.libraries.enrol(sessions[ENGINEERS[0]], name, root / name)
        _shared = Shared(terminal, policy, engine, root)
        atexit.register(shutil.rmtree, root, True)
        atexit.register(terminal.close)
    return _shared


# "*" is whoever would naturally act next (the creator, a Superintendent, the peer reviewer), so that random
# sequences get deep into the state machine as well as trying every wrong person.
NATURAL = "*"
people = st.sampled_from([NATURAL] * (2 * len(CAST)) + sorted(CAST))
# Weighted towards the steps that move a case on (hypothesis favours a list's first element).
# "next" is the step the case's state calls for (submit a draft, approve a submission, search an approved case,
# adjudicate the first undecided candidate...), so cases get deep; the named kinds try every step out of turn.
NEXT = {
    CaseState.DRAFT: "advice_or_submit",
    CaseState.SUBMITTED: "approve",
    CaseState.APPROVED: "search",
    CaseState.SEARCHED: "adjudicate",
    CaseState.PEER_REVIEW: "peer_review",
    CaseState.ADJUDICATED: "close",
}
kinds = st.sampled_from(
    ["next"] * 12
    + ["new", "submit", "approve", "reject", "search", "adjudicate", "peer_review", "close", "withdraw", "enrol"]
)
actions = st.tuples(
    kinds,
    people,
    st.sampled_from([0, 0, 0, 1, 2]),  # which of the example's cases (0 = the latest)
    st.sampled_from(["adult", "under13", "13-15", "16-17", "unknown"]),
    st.booleans(),  # relevant disability / viable / agree
    st.sampled_from([("custody",), ("other",), ("custody", "other")]),
    st.integers(1, 3),  # candidate rank (3 does not exist: a refusal)
    st.booleans(),  # with a Match Report
)
# Each example opens one to three cases first, by random people, so the actions have something to work on.
openings = st.lists(actions.map(lambda a: ("new", *a[1:])), min_size=1, max_size=3)


def perform(world: Shared, mine: list[str], action: tuple[Any, ...]) -> None:
    kind, who = action[0], action[1]
    cases = world.cases
    case_id = mine[-1 - action[2] % len(mine)] if mine and kind != "new" else None
    rank = action[6]
    if kind == "next" and case_id is not None:
        case = cases.case(case_id)
        kind = NEXT.get(case.state, "close")
        undecided = [c.rank for c in case.candidates if c.decision is None]
        if kind == "adjudicate" and undecided:
            rank = undecided[0]
        if kind == "advice_or_submit":
            kind = "advice" if case.approval_flags and not case.advice else "submit"
    if kind == "enrol":  # an engineer changes a library under whatever cases are approved
        engineer = world.terminal.accounts.login(ENGINEERS[0], PASSWORD)
        library = action[5][0]
        folder = world.root / f"more-{library}-{action[2]}-{action[6]}-{len(mine)}"
        if not folder.exists():
            write_subject_folders(folder, {f"late-{folder.name}": 1}, seed=len(mine) * 7 + action[6])
        world.terminal.libraries.enrol(engineer, library, folder)
        return
    if who == NATURAL:
        pick = action[6]
        creator = cases.case(case_id).created_by if case_id else ("alice", "bob", "rita")[pick - 1]
        # The natural approver or reviewer is sometimes one who must be refused (too junior, or their own case).
        who = {
            "approve": ("sue", "ivan", "bob")[pick - 1],
            "reject": "ivan",
            "peer_review": ("pat", "rita")[pick % 2],
        }.get(kind, creator)
    session = world.terminal.accounts.login(who, PASSWORD)
    if kind == "new":
        _, _, _, band, disability, libraries, _, _ = action
        form = SubmissionForm.create(
            world.policy,
            completed_by=who,
            use_case="identify_unknown_subject",
            reference="OCC/1",
            offence="robbery",
            justification="Necessary and proportionate to identify the robber of a shop in the high street.",
            pre_rfr_checks=CHECKS,
            probe_source="police",
            probe_captured="2026-01-02",
            probe_obtained="From the shop's CCTV by the officer in the case",
            age_band=band,
            relevant_disability=disability,
            libraries=list(libraries),
            now=world.ws.now(),
        )
        mine.append(cases.new_case(session, form, synthetic_jpeg(1, len(mine))).id)
        return
    if case_id is None:
        return
    if kind == "advice":
        cases.record_advice(
            session,
            case_id,
            flag="technical_advice",
            adviser="FRT team duty officer",
            given_on="2026-01-03",
            advice="The FRT team advise comparing the eye region and ears; scarring may lower the score.",
        )
    elif kind == "submit":
        cases.submit(session, case_id)
    elif kind == "approve":
        cases.approve(session, case_id, "proportionate")
    elif kind == "reject":
        cases.reject(session, case_id, "not proportionate")
    elif kind == "search":
        cases.search(session, case_id)
    elif kind == "withdraw":
        cases.withdraw(session, case_id, "no longer needed for the investigation")
    elif kind == "close":
        cases.close(session, case_id)
    elif kind == "adjudicate":
        _, _, _, _, viable, _, _, with_report = action
        cases.adjudicate(session, case_id, rank, "viable" if viable else "not_viable", REPORT if with_report else None)
    elif kind == "peer_review":
        cases.peer_review(session, case_id, action[4], "reviewed")


def check_invariants(world: Shared, mine: list[str], first_seq: int = 1) -> None:
    policy = world.policy
    with world.ws.reading() as conn:
        log = list(audit.events(conn, first=first_seq))
    # Nobody acts without a named user: every event is a person's, or the terminal's own under the policy.
    people = set(CAST) | set(ENGINEERS)
    for event in log:
        assert (
            event.actor in people
            or (event.actor == "system" and event.action in SYSTEM_ACTIONS)
            or (event.actor == "unknown" and event.action == "user.sign_in_refused")
        ), event
    for case_id in mine:
        case = world.cases.case(case_id)
        trail = [e for e in log if e.subjects.get("case") == case_id and e.action != "case.refused"]
        approvals = [r for r in case.reviews if r.kind == "approval"]
        # Nobody approves their own case; an approval is by an approver of sufficient rank.
        for review in approvals:
            assert review.actor != case.created_by
            assert review.rank is not None and policy.rank_at_least(review.rank, case.required_rank)
            assert "approver" in CAST[review.actor][0]
        # No under-13 case approved below Superintendent.
        if case.form.age_band == "under13" and approvals:
            assert all(policy.rank_at_least(r.rank or "", "Superintendent") for r in approvals)
        # No search without a covering approval (in the log: case.approve precedes case.search) ...
        actions = [e.action for e in trail]
        if "case.search" in actions:
            assert "case.approve" in actions[: actions.index("case.search")]
            assert "case.reject" not in actions
            # ... and never of a library changed since: the search ran on exactly the libraries, by identity
            # and content version, that its approval recorded.
            search = next(e for e in trail if e.action == "case.search")
            approval = [e for e in trail if e.action == "case.approve" and e.seq < search.seq][-1]
            assert search.details["libraries"] == approval.details["libraries"]
        if case.state in (CaseState.SEARCHED, CaseState.ADJUDICATED, CaseState.PEER_REVIEW, CaseState.CLOSED):
            assert approvals and case.searched_by is not None
            assert set(case.libraries_searched) == set(case.form.libraries)
        # No case closes "no viable match" without a peer review by another person.
        if case.state is CaseState.CLOSED and case.outcome is Outcome.NO_VIABLE_MATCH:
            agreed = [r for r in case.reviews if r.kind == "peer_review" and r.agree]
            assert agreed and agreed[-1].actor not in case.adjudicators
            assert case.peer_reviewed_by == agreed[-1].actor
            # ... and its probe template and probe-derived data are gone.
            assert probe_template(world.ws, case_id) is None and not case.probe_image_held
            assert all(c.score is None for c in case.candidates)
            assert "case.probe_deleted" in actions
        if case.state is CaseState.CLOSED:
            assert probe_template(world.ws, case_id) is None
            assert case.outcome is not None
            if case.outcome is Outcome.VIABLE_MATCH:
                assert case.viable and all(c.report is not None for c in case.viable)
        # No probe data held once a case ended without a Viable Match (rejected, withdrawn, expired, reviewed).
        if case.state in (CaseState.REJECTED, CaseState.WITHDRAWN, CaseState.EXPIRED):
            assert not case.probe_image_held and probe_template(world.ws, case_id) is None
            assert case.probe_face is None and all(c.score is None for c in case.candidates)
        # Every peer review was by someone other than the adjudicators at the time it counted.
        if case.peer_reviewed_by is not None:
            assert case.peer_reviewed_by not in case.adjudicators


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(openings, st.lists(actions, min_size=10, max_size=50))
def test_random_casework_keeps_the_invariants(opening: list[tuple[Any, ...]], steps: list[tuple[Any, ...]]) -> None:
    world = shared()
    mine: list[str] = []
    last = world.ws.query_one("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
    first_seq = int(last[0]) + 1 if last else 1
    for action in opening + steps:
        try:
            perform(world, mine, action)
        except RfrError:
            pass
        check_invariants(world, mine, first_seq)
    with world.ws.reading() as conn:
        result = audit.verify(conn, world.ws.audit_public_key)
    assert result.ok, result.problems


def test_the_cast_reaches_every_state() -> None:
    """A positive control: a scripted run through the same ``perform`` reaches closed with both outcomes."""
    world = shared()
    mine: list[str] = []

    def step(kind: str, who: str, *, band: str = "adult", flag: bool = False, rank: int = 1) -> tuple[Any, ...]:
        return (kind, who, 0, band, flag, ("custody",), rank, flag)

    script = [
        step("new", "alice"),
        step("submit", "alice"),
        step("approve", "ivan"),
        step("search", "alice"),
        step("adjudicate", "alice", rank=1),
        step("adjudicate", "alice", rank=2),
        step("peer_review", "rita", flag=True),
        step("new", "rita", band="under13"),
        step("submit", "rita"),
        step("approve", "sue"),
        step("search", "rita"),
        step("adjudicate", "rita", rank=1, flag=True),
        step("adjudicate", "rita", rank=2),
        step("close", "rita"),
    ]
    for action in script:
        perform(world, mine, action)
        check_invariants(world, mine)
    script = [
        step("new", "alice"),
        step("submit", "alice"),
        step("approve", "ivan"),
        step("enrol", "alice"),  # the library changes under the approval: the search is refused
        step("search", "alice"),
        step("withdraw", "alice"),
    ]
    for action in script:
        try:
            perform(world, mine, action)
        except RfrError:
            assert action[0] == "search"
        check_invariants(world, mine)
    first, second, third = (world.cases.case(c) for c in mine)
    assert (first.state, first.outcome) == (CaseState.CLOSED, Outcome.NO_VIABLE_MATCH)
    assert (second.state, second.outcome) == (CaseState.CLOSED, Outcome.VIABLE_MATCH)
    assert third.state is CaseState.WITHDRAWN and not third.probe_image_held
