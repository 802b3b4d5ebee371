"""What the command-line case tests type: the Pre-RFR Checks as ``rfr case new`` takes them, and a Match Report
file as ``rfr case report`` reads it (a press photograph of a man, compared with his reference images)."""

from __future__ import annotations

CHECKS = [
    "--check", "local_intelligence", "exhausted", "Local intelligence and PNC searched: no trace of him",
    "--check", "circulation", "exhausted", "Circulated to the response teams; nobody knew him",
    "--check", "other_enquiries", "exhausted", "Witnesses and shop records checked without result",
    "--check", "biometric_identification", "unviable", "No fingerprints or DNA were left at the scene",
]  # fmt: skip
REPORT = """
factors:
  probe_image_quality: {relevant: true, assessment: "press photograph, face about 100 px wide, sharp"}
  reference_image_quality: {relevant: false, assessment: "press photograph, frontal, even exposure"}
  time_lapse: {relevant: true, assessment: "a few years apart; same hairline and ear shape"}
  lighting: {relevant: false, assessment: "daylight in both"}
  other: {relevant: false, assessment: "no coverings, no eyewear in either"}
reasoning: "Eyebrows, nose, mouth and ears agree, and nothing differs that time does not explain."
"""
