"""Fuzz the audit bundle reader for longer than the test suite does: every hostile bundle must be refused cleanly.

Builds the known history of ``tests/oversight/history.py`` (a real terminal, the synthetic face
engine, two exports) in a temporary folder, then runs the three attack strategies of
``tests/oversight/fuzzing.py`` (mutated bytes; a container mutated and sealed again; files mutated
and signed again with the terminal's own key) for ``--examples`` examples each. It prints, per
strategy, how many examples ran, how many were refused and the commonest refusals, and exits 1 on
the first example that raises anything but ``BundleRefused`` (hypothesis shrinks it and prints it).

Run from the repository: ``.venv/bin/python scripts/fuzz_bundles.py --examples 5000``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' history and strategies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per strategy (default 2000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, to repeat a run")
    args = parser.parse_args()

    from hypothesis import seed

    from tests.oversight.fuzzing import Target, mutated_bytes, sealed_attacks, signed_attacks
    from tests.oversight.history import run_history

    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        target = Target.of(run_history(Path(root)))
        print(f"history built and exported in {time.perf_counter() - started:.1f} s")
        assert target.read(target.genuine) == "accepted"
        strategies = {
            "raw bytes": lambda: mutated_bytes(target.genuine),
            "container sealed again": lambda: sealed_attacks(target),
            "files signed again by the terminal": lambda: signed_attacks(target),
        }
        failed = False
        for name, make in strategies.items():
            verdicts: Counter[str] = Counter()
            run = _runner(target, make, verdicts, args.examples)
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
            print(
                f"{name}: {total} examples in {seconds:.1f} s, {total - verdicts['accepted']} refused, "
                f"{verdicts['accepted']} accepted (left valid, as signed)"
            )
            for verdict, count in verdicts.most_common(6):
                print(f"    {count:6}  {verdict}")
    return 1 if failed else 0


def _runner(target: object, make: object, verdicts: Counter[str], examples: int) -> object:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        verdict = target.read(data.draw(make()))  # type: ignore[attr-defined, operator]
        verdicts[verdict.split(":")[0][:70]] += 1

    return run


if __name__ == "__main__":
    raise SystemExit(main())
