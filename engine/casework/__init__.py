"""Casework: submission -> approval -> search -> adjudication -> Match Report, as a policed state machine.

Typical use::

    accounts = Accounts(ws._require_open(), policy, transaction=ws.transaction)
    cases = Casework(ws, accounts, policy)
    form = SubmissionForm.create(policy, completed_by="alice", use_case="identify_unknown_subject", ...)
    case = cases.new_case(alice, form, probe_bytes)
    cases.submit(alice, case.id); cases.approve(inspector, case.id, "proportionate")
    result = cases.search(alice, case.id, face_engine)
    cases.adjudicate(alice, case.id, 1, "viable", MatchReport.from_file(path))
    cases.close(alice, case.id)
"""

from engine.casework.export import PLAINTEXT_WARNING, render_match_report, write_report_file
from engine.casework.form import CompletedAs, ProbeSource, SubmissionForm
from engine.casework.match_report import FACTORS, Factor, MatchReport
from engine.casework.model import Case, CaseCandidate, CaseState, Decision, Outcome, Review
from engine.casework.service import Casework, ReportMaterial, SearchResult, probe_template

__all__ = [
    "FACTORS",
    "PLAINTEXT_WARNING",
    "Case",
    "CaseCandidate",
    "CaseState",
    "Casework",
    "CompletedAs",
    "Decision",
    "Factor",
    "MatchReport",
    "Outcome",
    "ProbeSource",
    "ReportMaterial",
    "Review",
    "SearchResult",
    "SubmissionForm",
    "probe_template",
    "render_match_report",
    "write_report_file",
]
