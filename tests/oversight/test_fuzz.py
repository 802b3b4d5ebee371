"""Hypothesis fuzzing of the bundle reader (short; ``scripts/fuzz_bundles.py`` runs it long): only clean refusals.

Each example is a hostile bundle made from a genuine one (see ``tests/oversight/fuzzing.py``): its
bytes mutated; its container mutated and sealed again; or a file mutated and signed again with the
terminal's own key. Reading it must accept it or raise ``BundleRefused`` with one line; nothing else.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.oversight.fuzzing import Target, mutated_bytes, sealed_attacks, signed_attacks
from tests.oversight.history import World

SHORT = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def target(world: World) -> Target:
    return Target.of(world)


def test_the_genuine_bundle_is_accepted(target: Target) -> None:
    assert target.read(target.genuine) == "accepted"
    files, predicate = target.files()
    assert target.read(target.signed(files, predicate)) == "accepted"  # the control for the signed attacks


@SHORT
@given(data=st.data())
def test_mutated_bytes_are_refused_cleanly(target: Target, data: st.DataObject) -> None:
    mutated = data.draw(mutated_bytes(target.genuine))
    verdict = target.read(mutated)
    assert verdict != "accepted" or mutated == target.genuine


@SHORT
@given(data=st.data())
def test_a_resealed_container_is_refused_cleanly(target: Target, data: st.DataObject) -> None:
    target.read(data.draw(sealed_attacks(target)))


@SHORT
@given(data=st.data())
def test_files_signed_again_by_the_terminal_are_refused_cleanly(target: Target, data: st.DataObject) -> None:
    target.read(data.draw(signed_attacks(target)))
