"""The crash harness (tests/crash_harness.py) for one kill in each step: the node and its children SIGKILLed during
an import, a sync, proving, a submission and a training run, each time restarted and checked (vault check, no
committed record lost, every job ended, the audit chain whole), and at the end no batch marked submitted that the
chain lacks. `make crash` runs 200 kills."""

from __future__ import annotations

from pathlib import Path

from tests.crash_harness import STEPS, Harness


def test_a_node_killed_in_every_step_loses_nothing_and_ends_every_job(tmp_path: Path) -> None:
    lines: list[str] = []
    report = Harness(tmp_path, seed=7, out=lines.append).run(kills=len(STEPS))
    assert report.problems == [], "\n".join(lines)
    assert report.kills == dict.fromkeys(STEPS, 1)
    assert report.records >= 4_000 and report.batches_submitted >= 1
