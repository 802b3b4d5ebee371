"""Fuzzing the package and metadata readers (short here; scripts/fuzz_media.py runs it for longer).

Whatever a medium holds, reading and staging it ends in a clean refusal or in a verified
medium, never in a traceback; a manifest's JSON, however mutated, parses or is refused with
``PackageRejected`` naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.media.format import PackageRejected, parse_manifest
from tests.media.fuzzing import JSON, Target, byte_mutation, json_mutation, signed_mutation
from tests.media.repository import library_package

SHORT = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_manifest_json_mutations_are_parsed_or_refused_cleanly() -> None:
    manifest, _blobs = library_package(1, {"alpha": 2, "bravo": 1}, remove=["zulu"])
    document = manifest.to_json()

    @SHORT
    @given(st.data())
    def check(data: st.DataObject) -> None:
        mutated = data.draw(json_mutation(document))
        try:
            parsed = parse_manifest(json.dumps(mutated).encode())
        except PackageRejected as exc:
            assert "\n" not in exc.diagnostics()
            return
        assert parse_manifest(parsed.to_bytes()) == parsed  # what parses, round-trips

    check()


def test_manifest_bytes_are_parsed_or_refused_cleanly() -> None:
    raw = library_package(1, {"alpha": 1})[0].to_bytes()

    @SHORT
    @given(st.data() | st.just(None), st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()))
    def check(data: st.DataObject | None, junk: bytes) -> None:
        candidate = data.draw(byte_mutation(raw)) if data is not None else junk
        try:
            parse_manifest(candidate)
        except PackageRejected:
            pass

    check()


def test_media_mutated_byte_by_byte_are_refused_cleanly(tmp_path: Path) -> None:
    target = Target.build(tmp_path / "world")
    try:
        assert target.attempt(target.genuine) == "staged"
        files = target.files()

        @SHORT
        @given(st.sampled_from(files), st.data())
        def check(relative: str, data: st.DataObject) -> None:
            medium = target.copy(tmp_path / "scratch")
            path = medium / "rfr-packages" / relative
            path.write_bytes(data.draw(byte_mutation(path.read_bytes())))
            target.attempt(medium)  # any RfrError is a verdict; anything else fails the test

        check()
    finally:
        target.world.terminal.close()


def test_metadata_mutated_and_signed_again_by_the_role_is_refused_cleanly(tmp_path: Path) -> None:
    target = Target.build(tmp_path / "world")
    try:
        metadata = [f for f in target.files() if f.startswith("metadata/") and "root" not in f]

        @SHORT
        @given(st.sampled_from(metadata), st.data())
        def check(relative: str, data: st.DataObject) -> None:
            medium = target.copy(tmp_path / "scratch")
            signed_mutation(target, medium, relative, lambda signed: data.draw(json_mutation(signed)))
            target.attempt(medium)

        check()
    finally:
        target.world.terminal.close()
