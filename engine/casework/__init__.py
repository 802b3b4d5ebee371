"""Casework: submission -> approval -> search -> adjudication -> Match Report, as a policed state machine.

Typical use (``engine.terminal.Terminal`` assembles ``cases``)::

    form = SubmissionForm.create(policy, completed_by="alice", use_case="identify_unknown_subject", ...)
    case = cases.new_case(alice, form, probe_bytes, face=1)
    cases.submit(alice, case.id); cases.approve(inspector, case.id, "proportionate")
    result = cases.search(alice, case.id)
    cases.adjudicate(alice, case.id, 1, "viable", MatchReport.from_file(path))
    cases.close(alice, case.id)
"""

from engine.casework.export import (
    HOW_TO_OPEN,
    REPORT_SUFFIX,
    ReportSealing,
    check_report_passphrase,
    read_report_recipients,
    render_match_report,
    write_report_file,
)
from engine.casework.form import CheckStatus, CompletedAs, PreRfrCheckAnswer, ProbeSource, SubmissionForm
from engine.casework.match_report import FACTORS, Factor, MatchReport
from engine.casework.model import (
    Advice,
    ApprovedLibrary,
    Case,
    CaseCandidate,
    CaseState,
    CaseStep,
    Decision,
    Outcome,
    ProbeFace,
    Review,
)
from engine.casework.service import (
    CandidateView,
    Casework,
    Display,
    FaceSeen,
    ProbeExamination,
    ProbeView,
    ReportMaterial,
    SearchResult,
    SweepReport,
    probe_template,
)

__all__ = [
    "FACTORS",
    "HOW_TO_OPEN",
    "REPORT_SUFFIX",
    "Advice",
    "ApprovedLibrary",
    "CandidateView",
    "Case",
    "CaseCandidate",
    "CaseState",
    "CaseStep",
    "Casework",
    "CheckStatus",
    "CompletedAs",
    "Decision",
    "Display",
    "FaceSeen",
    "Factor",
    "MatchReport",
    "Outcome",
    "PreRfrCheckAnswer",
    "ProbeExamination",
    "ProbeFace",
    "ProbeSource",
    "ProbeView",
    "ReportMaterial",
    "ReportSealing",
    "Review",
    "SearchResult",
    "SubmissionForm",
    "SweepReport",
    "check_report_passphrase",
    "probe_template",
    "read_report_recipients",
    "render_match_report",
    "write_report_file",
]
