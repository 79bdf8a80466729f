"""The fuzzers of every parser of outside bytes (fuzz/): each runs for a few seconds under atheris here (`make
fuzz` runs them for minutes), and every crash they found stays fixed (fuzz/regressions/, replayed here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.targets import TARGETS
from tests.conftest import REPO

REGRESSIONS = REPO / "fuzz" / "regressions"
SECONDS = 3


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_fuzzer_finds_no_crash_in_a_short_run(name: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fuzz.run", name, f"-max_total_time={SECONDS}", f"-artifact_prefix={tmp_path}/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert run.returncode == 0 and done is not None, run.stderr[-3000:]
    assert int(done.group(1)) > 100  # it really ran (thousands a second for most targets)
    assert not list(tmp_path.glob("crash-*"))


def test_every_target_has_seeds_that_parse() -> None:
    for name, target in TARGETS.items():
        assert target.seeds, name
        for seed in target.seeds:
            target.run(seed)  # a valid input is not a crash either


@pytest.mark.parametrize("found", sorted(REGRESSIONS.glob("*/*")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_crash_the_fuzzer_found_stays_fixed(found: Path) -> None:
    TARGETS[found.parent.name].run(found.read_bytes())
