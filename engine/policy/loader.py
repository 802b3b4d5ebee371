"""Load a policy file into the typed model, naming the key path of every problem.

Validation has two passes. The structural pass walks the dataclasses of
``engine.policy.model`` (types, required keys, unknown keys, ranges, patterns:
the same metadata the JSON Schema is generated from). The reference pass checks
what a schema cannot: that every rank, age band and flag a rule names exists,
that names are unique, that a rule never lowers the approving rank, and that no
threshold is set without the calibration it must come from. All problems are
collected, so the force sees every mistake in one go.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from engine.errors import PolicyError
from engine.policy.model import Policy

MAX_POLICY_BYTES = 1_000_000

_PATTERN_HINTS = {
    r"^[a-z][a-z0-9_]*$": "use lowercase letters, digits and '_', starting with a letter",
    r"^[a-z0-9][a-z0-9_-]*$": "use lowercase letters, digits, '_' and '-'",
}


def default_policy_path() -> Path:
    """``policies/default.yaml`` in the source tree."""
    return Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


def load_default_policy() -> Policy:
    return load_policy(default_policy_path())


def load_policy(path: str | Path) -> Policy:
    """Read, parse and validate a policy file; raises ``PolicyError`` naming the file and key paths."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"policy {path}: cannot be read ({exc.strerror or exc}); check the path") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy {path}: larger than {MAX_POLICY_BYTES} bytes; this is not a policy file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"policy {path}: not UTF-8 text") from None
    return load_policy_text(text, source=str(path))


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    """Parse YAML text (duplicate keys refused) and validate it."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except _DuplicateKey as exc:
        raise PolicyError(f"policy {source}: {exc}") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "malformed"
        raise PolicyError(f"policy {source}: not valid YAML{where}: {problem}") from None
    try:
        return parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"policy {source}: {exc}", exc.problems) from None


def parse_policy(data: object) -> Policy:
    """Validate already-parsed data (a mapping) into a ``Policy``; raises ``PolicyError`` listing every problem."""
    if data is None:
        raise PolicyError("(top level): the policy is empty", ("(top level): the policy is empty",))
    builder = _Builder()
    policy = builder.build(Policy, data, "", {})
    problems = builder.problems
    if not problems and isinstance(policy, Policy):
        problems = check_references(policy)
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
        raise PolicyError(problems[0] + more, tuple(problems))
    assert isinstance(policy, Policy)
    return policy


# YAML


class _DuplicateKey(Exception):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: a key must be text") from None
        if duplicate:
            raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# Structural pass


class _Invalid:
    """Marks a value that failed validation (its problem is already recorded)."""


_INVALID = _Invalid()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"text {value!r}"
    return repr(value)


class _Builder:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> _Invalid:
        self.problems.append(f"{path or '(top level)'}: {message}")
        return _INVALID

    def build(self, tp: Any, value: object, path: str, meta: dict[str, Any]) -> Any:
        origin = get_origin(tp)
        if origin in (types.UnionType, typing.Union):
            args = [a for a in get_args(tp) if a is not type(None)]
            if value is None:
                return None
            return self.build(args[0], value, path, meta)
        if value is None:
            return self.fail(path, "must not be null")
        if origin is Literal:
            return self._literal(get_args(tp), value, path)
        if origin is tuple:
            return self._tuple(get_args(tp)[0], value, path, meta)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._dataclass(tp, value, path)
        if tp is str:
            return self._str(value, path, meta)
        if tp is bool:
            if not isinstance(value, bool):
                return self.fail(path, f"expected true or false, got {_describe(value)}")
            return value
        if tp is int:
            if not isinstance(value, int) or isinstance(value, bool):
                return self.fail(path, f"expected a whole number, got {_describe(value)}")
            return self._range(value, path, meta)
        if tp is float:
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                return self.fail(path, f"expected a number, got {_describe(value)}")
            return self._range(float(value), path, meta)
        raise TypeError(f"policy model uses an unsupported type {tp!r} at {path}")

    def _literal(self, allowed: tuple[Any, ...], value: object, path: str) -> Any:
        for option in allowed:
            if type(option) is type(value) and option == value:
                return value
        if len(allowed) == 1:
            return self.fail(path, f"must be {allowed[0]!r}, got {_describe(value)}")
        return self.fail(path, f"{_describe(value)} is not one of: {', '.join(str(a) for a in allowed)}")

    def _tuple(self, item_type: Any, value: object, path: str, meta: dict[str, Any]) -> Any:
        if not isinstance(value, list):
            return self.fail(path, f"expected a list, got {_describe(value)}")
        if len(value) < meta.get("min_items", 0):
            return self.fail(path, f"needs at least {meta['min_items']} item(s)")
        items = [self.build(item_type, item, f"{path}[{i}]", {}) for i, item in enumerate(value)]
        if any(item is _INVALID for item in items):
            return _INVALID
        return tuple(items)

    def _dataclass(self, cls: type[Any], value: object, path: str) -> Any:
        if not isinstance(value, dict):
            return self.fail(path, f"expected a mapping, got {_describe(value)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        ok = True
        for key in value:
            if key not in fields:
                ok = False
                hint = difflib.get_close_matches(str(key), fields, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (expected one of: {', '.join(fields)})"
                self.fail(_join(path, str(key)), f"unknown key{suggestion}")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            if name in value:
                built = self.build(hints[name], value[name], _join(path, name), dict(f.metadata))
                ok = ok and built is not _INVALID
                kwargs[name] = built
            elif f.default is not dataclasses.MISSING:
                kwargs[name] = f.default
            else:
                ok = False
                self.fail(_join(path, name), "missing")
        return cls(**kwargs) if ok else _INVALID

    def _str(self, value: object, path: str, meta: dict[str, Any]) -> Any:
        if not isinstance(value, str):
            return self.fail(path, f"expected text, got {_describe(value)}")
        if len(value.strip()) < meta.get("min_length", 0):
            return self.fail(path, "must not be empty")
        pattern = meta.get("pattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            return self.fail(path, f"{value!r} is not a valid key: {_PATTERN_HINTS.get(pattern, pattern)}")
        return value

    def _range(self, value: float, path: str, meta: dict[str, Any]) -> Any:
        if "minimum" in meta and value < meta["minimum"]:
            return self.fail(path, f"must be at least {meta['minimum']}, got {value}")
        if "exclusive_minimum" in meta and value <= meta["exclusive_minimum"]:
            return self.fail(path, f"must be more than {meta['exclusive_minimum']}, got {value}")
        if "maximum" in meta and value > meta["maximum"]:
            return self.fail(path, f"must be at most {meta['maximum']}, got {value}")
        return value


# Reference pass


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if close:
        return f"unknown {kind} {name!r} (did you mean {close[0]!r}?)"
    return f"unknown {kind} {name!r} (known: {', '.join(known)})"


def _duplicates(problems: list[str], path: str, attribute: str, names: Iterable[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            problems.append(f"{path}[{i}].{attribute}: {name!r} is already used by {path}[{seen[name]}]")
        else:
            seen[name] = i


def check_references(policy: Policy) -> list[str]:
    """Problems a schema cannot express, each with its key path."""
    problems: list[str] = []
    _duplicates(problems, "use_cases", "key", (c.key for c in policy.use_cases))
    _duplicates(problems, "pre_rfr_checks", "key", (c.key for c in policy.pre_rfr_checks))
    _duplicates(problems, "age_bands", "key", (b.key for b in policy.age_bands))
    _duplicates(problems, "approval.flags", "key", (f.key for f in policy.approval.flags))
    _duplicates(problems, "approval.rules", "name", (r.name for r in policy.approval.rules))

    rank_paths: dict[str, str] = {}
    for i, rank in enumerate(policy.ranks):
        for path, name in [(f"ranks[{i}].name", rank.name)] + [
            (f"ranks[{i}].staff_equivalents[{j}]", staff) for j, staff in enumerate(rank.staff_equivalents)
        ]:
            if name in rank_paths:
                problems.append(f"{path}: {name!r} is already on the ladder at {rank_paths[name]}")
            else:
                rank_paths[name] = path
            if not name.strip():
                problems.append(f"{path}: must not be empty")

    for i, band in enumerate(policy.age_bands):
        if band.under_16 and not band.under_18:
            problems.append(f"age_bands[{i}].under_18: must be true when under_16 is true")

    bands = [b.key for b in policy.age_bands]
    flags = [f.key for f in policy.approval.flags]
    default_known = policy.approval.min_rank in rank_paths
    if not default_known:
        problems.append(f"approval.min_rank: {_unknown('rank', policy.approval.min_rank, rank_paths)}")
    for i, rule in enumerate(policy.approval.rules):
        path = f"approval.rules[{i}]"
        if rule.min_rank not in rank_paths:
            problems.append(f"{path}.min_rank: {_unknown('rank', rule.min_rank, rank_paths)}")
        elif default_known and policy.rank_level(rule.min_rank) < policy.rank_level(policy.approval.min_rank):
            problems.append(
                f"{path}.min_rank: {rule.min_rank!r} is below approval.min_rank {policy.approval.min_rank!r}; "
                "a rule can only raise the approving rank"
            )
        when = rule.when
        if when.age_bands is None and when.relevant_disability is None and when.pre_dates_gender_reassignment is None:
            problems.append(f"{path}.when: names no condition; put a rule for every case in approval.min_rank")
        if when.age_bands is not None and not when.age_bands:
            problems.append(f"{path}.when.age_bands: an empty list never matches; name at least one age band")
        for j, band_key in enumerate(when.age_bands or ()):
            if band_key not in bands:
                problems.append(f"{path}.when.age_bands[{j}]: {_unknown('age band', band_key, bands)}")
        for j, flag in enumerate(rule.flags):
            if flag not in flags:
                problems.append(f"{path}.flags[{j}]: {_unknown('flag', flag, flags)}")

    point = policy.operating_point
    if point.threshold is not None and point.calibration_id is None:
        problems.append(
            "operating_point.threshold: set without operating_point.calibration_id; "
            "the threshold must be derived from a calibration, leave it null until one exists"
        )
    return problems
