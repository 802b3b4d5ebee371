"""Fuzz the removable media reader for longer than the test suite does: every hostile medium must be refused cleanly.

Builds a terminal that trusts a test central unit's root and has applied one medium
(``tests/media/conftest.py``), and a good second medium (a policy, an accounts and a library
package), in a temporary folder; then runs the strategies of ``tests/media/fuzzing.py``: any
file of the medium mutated byte by byte; metadata mutated and signed again with the role's own
key (the chain above it signed again too); a manifest's JSON mutated and parsed. Each runs for
``--examples`` examples. It prints, per strategy, how many ran, how many were refused and the
commonest refusals, and exits 1 on the first example that raises anything but a clean refusal
(hypothesis shrinks it and prints it).

Run from the repository: ``.venv/bin/python scripts/fuzz_media.py --examples 2000``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' terminal, repository and strategies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples per strategy (default 1000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, to repeat a run")
    args = parser.parse_args()

    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    from engine.media.format import PackageRejected, parse_manifest
    from tests.media.fuzzing import Target, byte_mutation, json_mutation, signed_mutation
    from tests.media.repository import library_package

    with tempfile.TemporaryDirectory() as root:
        folder = Path(root)
        started = time.perf_counter()
        target = Target.build(folder / "world")
        print(f"terminal and media built in {time.perf_counter() - started:.1f} s")
        assert target.attempt(target.genuine) == "staged"
        files = target.files()
        metadata = [f for f in files if f.startswith("metadata/") and "root" not in f]
        document = library_package(1, {"alpha": 2, "bravo": 1}, remove=["zulu"])[0].to_json()
        verdicts: Counter[str] = Counter()

        def bytes_example(relative: str, data: st.DataObject) -> None:
            medium = target.copy(folder / "scratch")
            path = medium / "rfr-packages" / relative
            path.write_bytes(data.draw(byte_mutation(path.read_bytes())))
            verdicts[target.attempt(medium)] += 1

        def signed_example(relative: str, data: st.DataObject) -> None:
            medium = target.copy(folder / "scratch")
            signed_mutation(target, medium, relative, lambda signed: data.draw(json_mutation(signed)))
            verdicts[target.attempt(medium)] += 1

        def manifest_example(_relative: str, data: st.DataObject) -> None:
            try:
                parse_manifest(json.dumps(data.draw(json_mutation(document))).encode())
                verdicts["parsed"] += 1
            except PackageRejected as exc:
                verdicts[" ".join(exc.diagnostics().split()[:4])] += 1

        strategies: dict[str, tuple[list[str], Callable[[str, st.DataObject], None]]] = {
            "medium bytes mutated": (files, bytes_example),
            "metadata signed again by its role": (metadata, signed_example),
            "manifest JSON mutated": (["manifest"], manifest_example),
        }
        failed = False
        for name, (choices, body) in strategies.items():
            verdicts.clear()
            run = settings(max_examples=args.examples, deadline=None, suppress_health_check=list(HealthCheck))(
                given(st.sampled_from(choices), st.data())(body)
            )
            if args.seed is not None:
                run = seed(args.seed)(run)
            started = time.perf_counter()
            try:
                run()
            except Exception as exc:  # the shrunk example has been printed by hypothesis
                print(f"{name}: FAILED with {exc.__class__.__name__}: {exc}")
                failed = True
                continue
            seconds = time.perf_counter() - started
            total = sum(verdicts.values())
            clean = total - verdicts["staged"] - verdicts["parsed"]
            print(f"{name}: {total} examples in {seconds:.1f} s, {clean} refused cleanly, none raised anything else")
            for verdict, count in verdicts.most_common(6):
                print(f"  {count:6d}  {verdict}")
        target.world.terminal.close()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
