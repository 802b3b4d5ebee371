"""The Match Report as a printable, self-contained HTML document, which leaves the terminal only encrypted.

Both images are embedded as data URIs, so the document needs nothing else to print; that also
makes it biometric and personal data, so it is never written in plaintext. The file written is
the document encrypted in the age format (age-encryption.org/v1, ``pyrage``: bindings to rage,
the reference Rust implementation), which the receiving unit opens with ``age`` or ``rage``:

- to the public keys (``age1...``) of the people or units who may open Match Reports, when the
  terminal is given them (``report_recipients_file``): nobody at the terminal can open it again;
- else with a passphrase the officer chooses (at least 12 characters) and passes on separately.

It is written only where the officer says, never over an existing file, readable by its owner
only (mode 0600). Every export is audited by ``Casework.report_material``.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.casework.model import Case, CaseCandidate
from engine.casework.service import ReportMaterial
from engine.errors import CaseError, ConfigError, RfrError
from engine.files import read_regular_file
from engine.policy import Policy
from engine.scoring import UNCALIBRATED, LibrarySize, ScoreView, meaning_for_model
from engine.scoring.applicability import probe_caveats
from engine.scoring.meaning import SIMILARITY_NOTE
from engine.version import software_version

REPORT_SUFFIX = ".html.age"
MIN_REPORT_PASSPHRASE = 12
MAX_RECIPIENTS_FILE = 64 * 1024
HOW_TO_OPEN = "open it on the receiving machine with age or rage: age -d -o report.html FILE"


@dataclass(frozen=True)
class ReportSealing:
    """How an exported Match Report is encrypted: to the force's recipients, else with the officer's passphrase."""

    recipients: tuple[str, ...] = ()
    passphrase: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.recipients:
            if self.passphrase is None:
                raise CaseError("a Match Report is only exported encrypted: give a passphrase to encrypt it with")
            check_report_passphrase(self.passphrase)

    def seal(self, data: bytes) -> bytes:
        import pyrage  # only when a report is exported: a native library the terminal otherwise never needs

        if self.recipients:
            return bytes(pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(r) for r in self.recipients]))
        assert self.passphrase is not None
        return bytes(pyrage.passphrase.encrypt(data, self.passphrase))

    def describe(self) -> str:
        if self.recipients:
            count = len(self.recipients)
            return f"encrypted to the {count} recipient{'' if count == 1 else 's'} configured for Match Reports"
        return "encrypted with the passphrase you chose: pass it on separately, never with the file"


def check_report_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_REPORT_PASSPHRASE:
        raise CaseError(
            f"the Match Report passphrase is too short: use at least {MIN_REPORT_PASSPHRASE} characters "
            "(a sentence is fine); nothing was written"
        )


def read_report_recipients(path: Path) -> tuple[str, ...]:
    """The age public keys (``age1...``, one a line; ``#`` comments) Match Reports are encrypted to."""
    import pyrage

    raw = read_regular_file(
        Path(path), limit=MAX_RECIPIENTS_FILE, what="Match Report recipients file", error=ConfigError
    )
    recipients = []
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            pyrage.x25519.Recipient.from_str(text)
        except pyrage.RecipientError:
            raise ConfigError(
                f"Match Report recipients file {path} line {number}: not an age public key (age1...): "
                "give the public keys of those who may open Match Reports, one a line"
            ) from None
        recipients.append(text)
    if not recipients:
        raise ConfigError(f"Match Report recipients file {path} names no recipient: give at least one age1... key")
    return tuple(recipients)


_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 11pt; margin: 2em; color: #000; }
h1 { font-size: 16pt; } h2 { font-size: 13pt; border-bottom: 1px solid #000; margin-top: 1.5em; }
.lead { border: 3px solid #000; padding: 0.6em; font-weight: bold; margin: 1em 0; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #555; padding: 4px; vertical-align: top; }
th { text-align: left; width: 28%; background: #eee; }
.images { display: flex; gap: 2em; } figure { margin: 0; } img { max-width: 300px; max-height: 300px; }
@media print { .match { page-break-before: always; } }
"""


def _data_uri(image: tuple[bytes, str] | None) -> str | None:
    if image is None:
        return None
    data, media_type = image
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _check_label(policy: Policy, key: str) -> str:
    try:
        return policy.pre_rfr_check(key).label
    except RfrError:  # a check of an older policy this case was made under
        return key.replace("_", " ")


def _row(label: str, value: object) -> str:
    return f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"


def score_view(
    policy: Policy, model_id: str | None, model_sha256: str | None, library: LibrarySize | None = None
) -> ScoreView:
    """How the policy shows the case's scores, with their calibrated meaning when the model was calibrated."""
    meaning = None if model_id is None or model_sha256 is None else meaning_for_model(policy, model_id, model_sha256)
    return ScoreView.of(policy, meaning, library)


def score_meaning(view: ScoreView, score: float | None, distance: float | None) -> str:
    """What the score means, as the policy shows it: the calibrated statements and versions, or plainly not."""
    if view.hidden:
        return "not shown: the policy hides scores; the Potential Match was assessed by eye"
    if distance is None:
        return "not kept"
    meaning = view.meaning
    shown = view.words(score, distance) or ""
    if meaning is None:
        return f"{shown}; {UNCALIBRATED}"
    parts = [shown]
    if view.show == "similarity":
        parts[0] = f"{shown} ({SIMILARITY_NOTE.removesuffix('.')})"
    parts.append(view.threshold_words(distance) or "")
    versions = meaning.versions()
    parts.append(
        f"face model {versions['model_id']} ({versions['model_sha256'][:12]}); calibration {versions['calibration']}; "
        f"policy {versions['policy_version']}"
    )
    return "; ".join(p for p in parts if p)


def equity_caveat(view: ScoreView) -> str:
    """The equity caveat of the operating threshold (always: it is about the threshold, not a score)."""
    if view.meaning is None:
        return (
            "No calibration was measured for this face model: how often different people of one demographic group "
            "score within the threshold is unknown."
        )
    return view.meaning.equity_caveat()


def accuracy_caveats(case: Case, view: ScoreView) -> list[str]:
    """Which of the evaluation's accuracy figures apply to the case's Probe Image, as plain sentences.

    From the case's recorded under-16 flag and the probe face's measured quality; figures measured at
    another threshold or on another model are not cited. Empty when nothing limits the figures.
    """
    meaning = view.meaning
    return probe_caveats(
        case.probe_quality,
        "under_16" in case.monitoring_flags,
        threshold=meaning.threshold if meaning else None,
        model_sha256=meaning.model_sha256 if meaning else case.model_sha256,
    )


def render_match_report(material: ReportMaterial, policy: Policy) -> str:
    """The HTML text of the Match Report for every Viable Match of the case."""
    case = material.case
    form = case.form
    statement = policy.score_display.intelligence_lead_statement
    probe_uri = _data_uri(
        (material.probe_image, material.probe_media_type or "image/jpeg") if material.probe_image else None
    )
    use_case = next((u.title for u in policy.use_cases if u.key == form.use_case), form.use_case)
    view = score_view(policy, case.model_id, case.model_sha256, material.library)
    point = policy.operating_point
    threshold = (
        f"{point.threshold} (calibration {point.calibration_id}, "
        f"target false-match rate {point.target_false_match_rate})"
        if point.is_calibrated
        else f"not yet derived (target false-match rate {point.target_false_match_rate}; no calibration in the policy)"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Match Report {html.escape(case.id)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>RFR Match Report: case {html.escape(case.id)}</h1>",
        f'<p class="lead">{html.escape(statement)}</p>',
        "<h2>Case</h2><table>",
        _row("Crime or occurrence reference", form.reference),
        _row("Offence type", form.offence),
        _row("Use case", use_case),
        _row("Legitimate aim, necessity and proportionality", form.justification),
        *[
            _row(
                f"Pre-RFR Check: {_check_label(policy, answer.key)}",
                f"{answer.status.value}: {answer.detail}",
            )
            for answer in form.pre_rfr_checks
        ],
        _row("Form completed by", f"{form.completed_by} ({form.completed_as.value.replace('_', ' ')})"),
        _row("Probe Image source", form.probe_source.value.replace("_", " ")),
        _row("Probe Image captured", form.probe_captured),
        _row("Probe Image obtained", form.probe_obtained),
        _row("Apparent age band", form.age_band),
        _row("Relevant disability suspected", "yes" if form.relevant_disability else "no"),
        _row("Pre-dates gender reassignment", "yes" if form.pre_dates_gender_reassignment else "no"),
        _row("Head or face coverings", form.coverings or "none recorded"),
        _row("Injuries", form.injuries or "none recorded"),
        _row("Flags", ", ".join(case.flags) or "none"),
        *[
            _row(f"Advice recorded ({a.flag.replace('_', ' ')})", f"{a.adviser}, {a.given_on}: {a.advice}")
            for a in case.advice
        ],
        _row(
            "Approved by", f"{case.decided_by} ({case.decided_rank}) at {case.decided_at}; needed {case.required_rank}"
        ),
        _row("Approval reason", next((r.reason for r in case.reviews if r.kind == "approval"), "")),
        _row("Searched by", f"{case.searched_by} at {case.searched_at}"),
        _row("Libraries searched", ", ".join(case.libraries_searched)),
        _row("Face model", f"{case.model_id} (sha256 {case.model_sha256})"),
        _row("Operating threshold", threshold),
        _row("Equity at the operating threshold", equity_caveat(view)),
        _row("Searched", _searched_words(material.library)),
        _row("Policy", f"{policy.title} version {case.policy_version} (sha256 {case.policy_sha256})"),
        _row("Case state", case.state.value),
        _row(
            "Exported",
            f"by {material.exported_by} at {material.exported_at} with {software_version()}",
        ),
        "</table>",
    ]
    if case.probe_face is not None:
        face = case.probe_face
        how = face.note or "found at the photograph's own size"
        parts.insert(
            parts.index("</table>"),
            _row(
                "Face searched",
                f"face {face.number} of {face.faces_found} in the Probe Image ({face.width}x{face.height} pixels), "
                f"box {list(face.box)}; {how}",
            ),
        )
    if case.probe_quality:
        warnings = case.probe_quality.get("warnings") or []
        parts.append(
            "<h2>Measured Probe Image quality</h2><p>"
            + (html.escape("; ".join(warnings)) if warnings else "no quality warnings")
            + "</p>"
        )
    caveats = accuracy_caveats(case, view)
    parts.append(
        "<h2>Which accuracy figures apply to this Probe Image</h2>"
        + (
            "".join(f"<p>{html.escape(c)}</p>" for c in caveats)
            or "<p>The Probe Image is within what the evaluation measured (an adult face of the size and sharpness "
            "of its photographs); the figures above apply as stated.</p>"
        )
    )
    for candidate in case.viable:
        parts.append(
            _match_section(
                candidate,
                probe_uri,
                _data_uri(material.references.get(candidate.rank)),
                view,
            )
        )
    parts.append(f'<p class="lead">{html.escape(statement)}</p>')
    parts.append(f"<p>{html.escape(policy.score_display.rank_caution)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _searched_words(library: LibrarySize | None) -> str:
    if library is None:
        return "not recorded (searched before library sizes were recorded)"
    return f"{library.people:,} people ({library.templates:,} reference templates) in the libraries searched"


def _match_section(candidate: CaseCandidate, probe_uri: str | None, reference_uri: str | None, view: ScoreView) -> str:
    report = candidate.report
    if report is None:
        raise CaseError(f"Viable Match ranked {candidate.rank} has no Match Report")
    score_rows = (
        _row("Score", "not shown: the policy hides scores")
        if view.hidden
        else _row(view.heading or "Score", view.cell(candidate.score, candidate.distance))
        + _row("What the score means", score_meaning(view, candidate.score, candidate.distance))
    )

    def figure(uri: str | None, caption: str) -> str:
        body = f'<img src="{uri}" alt="{html.escape(caption)}">' if uri else "<p>(image no longer held)</p>"
        return f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>"

    rows = "".join(
        f"<tr><th>{html.escape(f.title)}</th><td>{'relevant' if f.relevant else 'not relevant'}</td>"
        f"<td>{html.escape(f.assessment)}</td></tr>"
        for f in report.factors
    )
    return (
        f'<div class="match"><h2>Viable Match: Potential Match ranked {candidate.rank}</h2>'
        f'<div class="images">{figure(probe_uri, "Probe Image")}'
        f"{figure(reference_uri, f'Reference image {candidate.image_id}, library {candidate.library}')}</div>"
        "<table>"
        + _row("Reference subject", candidate.subject)
        + _row("Library", candidate.library)
        + score_rows
        + _row("Adjudicated by", f"{candidate.decided_by} at {candidate.decided_at}")
        + "</table><h3>Subject, System and Environmental Factors</h3>"
        f"<table><tr><th>Factor</th><th>Relevant</th><th>How it was evaluated</th></tr>{rows}</table>"
        f"<h3>The RFR User's reasoning</h3><p>{html.escape(report.reasoning)}</p></div>"
    )


def write_report_file(path: Path, text: str, sealing: ReportSealing) -> Path:
    """Write the report, encrypted, to a new file, owner-readable only; never over an existing file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise CaseError(
            f"{path} already exists: choose a new file; a Match Report is never written over another file"
        ) from None
    except OSError as exc:
        raise CaseError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        data = sealing.seal(text.encode("utf-8"))  # after claiming the name: a passphrase's scrypt takes a second
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return path
