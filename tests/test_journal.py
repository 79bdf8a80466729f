"""The job journal: answered from memory, written in order by its own thread; what was written before `close`
is there after a reopen, in the order jobs were added; jobs a stop or crash left running are resumed or failed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from client.node.journal import Journal, UnknownJob


def test_states_and_progress_survive_a_reopen_in_order_and_running_jobs_are_resumed_or_failed(tmp_path: Path) -> None:
    path = tmp_path / "node" / "jobs.sqlite"
    journal = Journal(path)
    first = journal.add("sync", {"datanet": "ward", "peer": "/ip4/127.0.0.1/tcp/1/p2p/x"})
    second = journal.add("import", {"datanet": "ward", "paths": ["/a.jsonl"]})
    third = journal.add("prove", {"datanet": "ward"})
    journal.set_state(first.id, "running")
    journal.set_progress(first.id, {"received": 3})
    journal.set_state(second.id, "running")
    journal.set_state(third.id, "done")
    assert [j.id for j in journal.jobs()] == [third.id, second.id, first.id]  # newest first, from memory
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = Journal(path)
    assert [(j.id, j.state) for j in again.jobs()] == [
        (third.id, "done"),
        (second.id, "running"),
        (first.id, "running"),
    ]
    assert again.get(first.id).progress == {"received": 3}
    resumed, failed = again.recover({"sync", "prove"})
    assert [j.id for j in resumed] == [first.id] and [j.id for j in failed] == [second.id]
    assert [j.id for j in again.queued()] == [first.id]
    assert again.get(second.id).error == "interrupted by a node restart; start it again"
    with pytest.raises(UnknownJob, match="There is no job 'nope' here"):
        again.get("nope")
    again.close()
    assert [(j.state) for j in Journal(path).jobs()] == ["done", "failed", "queued"]
