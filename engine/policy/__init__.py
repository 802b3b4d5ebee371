"""The force's RFR policy as typed, frozen data: loaded from YAML, validated, versioned and hashed.

``load_policy(path)`` / ``load_default_policy()`` give a ``Policy``; ``policy.required_approval(form)``
says which rank must approve a case and which flags it carries; ``policy.version`` and
``policy.sha256`` are recorded on every case.
"""

from engine.policy.json_schema import policy_json_schema, render_policy_schema
from engine.policy.loader import (
    check_references,
    default_policy_path,
    load_default_policy,
    load_policy,
    load_policy_text,
    parse_policy,
)
from engine.policy.model import (
    AgeBand,
    Approval,
    ApprovalFlag,
    ApprovalRequirement,
    ApprovalRule,
    OperatingPoint,
    Policy,
    Rank,
    RuleCondition,
    SubjectFactors,
    SubjectFactorsLike,
    UseCase,
)


def required_approval(policy: Policy, form: SubjectFactorsLike) -> ApprovalRequirement:
    """``(min_rank, flags, reasons)`` for a form's subject factors under ``policy``."""
    return policy.required_approval(form)


__all__ = [
    "AgeBand",
    "Approval",
    "ApprovalFlag",
    "ApprovalRequirement",
    "ApprovalRule",
    "OperatingPoint",
    "Policy",
    "Rank",
    "RuleCondition",
    "SubjectFactors",
    "SubjectFactorsLike",
    "UseCase",
    "check_references",
    "default_policy_path",
    "load_default_policy",
    "load_policy",
    "load_policy_text",
    "parse_policy",
    "policy_json_schema",
    "render_policy_schema",
    "required_approval",
]
