"""Run one fuzz target under atheris (libFuzzer, coverage-guided), starting from the target's seeds:

    python -m fuzz.run TARGET [libFuzzer flags, e.g. -max_total_time=60]

A crash (an exception the parser does not document) stops the run; libFuzzer writes the input to
`crash-<hash>` in the current folder: copy it to fuzz/regressions/TARGET/ with a name that says what it found,
fix the parser, and the test suite replays it from then on. Prints the executions run on its last line.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import atheris


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit("usage: python -m fuzz.run TARGET [libFuzzer flags]")
    name = sys.argv[1]
    logging.disable(logging.CRITICAL)  # parsers log what they refuse; the fuzzer only wants crashes
    with atheris.instrument_imports(include=["client", "storage", "prover", "fuzz"]):
        from fuzz.targets import TARGETS
    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    target = TARGETS[name]
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    for i, seed in enumerate(target.seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    regressions = Path(__file__).parent / "regressions" / name
    for found in sorted(regressions.glob("*")) if regressions.exists() else []:
        (corpus / f"regression-{found.name}").write_bytes(found.read_bytes())
    atheris.Setup([sys.argv[0], *sys.argv[2:], str(corpus)], target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
