"""Demographic fields as the policy records them: sex, ethnicity by IC code, age range.

The monitoring the policy asks for (composition of the Image Reference Libraries) counts
these fields, so values are normalised to a small closed vocabulary at enrolment and anything
else is refused with a message naming the value.
"""

from __future__ import annotations

from datetime import date

SEXES = ("female", "male", "unknown")
_SEX_ALIASES = {"f": "female", "female": "female", "m": "male", "male": "male", "u": "unknown", "unknown": "unknown"}

# Police IC ("identity code") classification, as recorded by the officer. IC0: not recorded / unknown.
IC_CODES: dict[str, str] = {
    "IC0": "Unknown",
    "IC1": "White - North European",
    "IC2": "White - South European",
    "IC3": "Black",
    "IC4": "Asian - Indian subcontinent",
    "IC5": "Chinese, Japanese or other South East Asian",
    "IC6": "Arabic or North African",
}

# Age at capture. The first bands mirror the Submission Form's (under 13, 13-15, 16-17); adults are
# split further because the equity analysis needs more than "adult".
AGE_RANGES = ("0-12", "13-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown")
_AGE_BOUNDS = ((12, "0-12"), (15, "13-15"), (17, "16-17"), (24, "18-24"), (34, "25-34"), (44, "35-44"), (54, "45-54"))


def parse_sex(value: str) -> str:
    sex = _SEX_ALIASES.get(value.strip().lower())
    if sex is None:
        raise ValueError(f"sex {value!r} is not one of female, male, unknown (or F, M, U)")
    return sex


def parse_ic_code(value: str) -> str:
    code = value.strip().upper().replace(" ", "")
    if code not in IC_CODES:
        raise ValueError(f"ic_code {value!r} is not one of {', '.join(IC_CODES)}")
    return code


def parse_age_range(value: str) -> str:
    text = value.strip().lower().replace("–", "-").replace(" ", "")
    if text in AGE_RANGES:
        return text
    raise ValueError(f"age_range {value!r} is not one of {', '.join(AGE_RANGES)}")


def parse_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{field} {value!r} is not a date (YYYY-MM-DD)") from None


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_range_for(age: int) -> str:
    if age < 0:
        raise ValueError(f"age {age} is negative: the capture date is before the date of birth")
    for upper, band in _AGE_BOUNDS:
        if age <= upper:
            return band
    return "55-64" if age <= 64 else "65+"


def resolve_age_range(date_of_birth: date | None, capture_date: date | None, stated: str | None) -> str:
    """The age range at capture: computed from date of birth and capture date when both are known.

    A stated range that contradicts the computed one is refused rather than silently overridden.
    """
    if date_of_birth is not None and capture_date is not None:
        computed = age_range_for(age_on(date_of_birth, capture_date))
        if stated not in (None, "unknown", computed):
            raise ValueError(f"age_range {stated!r} contradicts date_of_birth and capture_date (age band {computed})")
        return computed
    return stated or "unknown"
