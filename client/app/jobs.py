"""Jobs as people read them: a job's progress or result in a few words, the same in the CLI and the TUI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def progress_text(job: Mapping[str, Any]) -> str:
    """A job's progress (while it runs) or summary (once done), in a few words: the CLI's `jobs` and the TUI."""
    p = job["progress"]
    if "batches_done" in p:
        return f"batch {p['batches_done']}/{p['batches']}"
    if "step" in p:
        return f"step {p['step']}/{p.get('total_steps', '?')}"
    if "received" in p:
        return f"{p['received']} received, {p['sent']} sent"
    if "imported" in p:
        return f"{sum(i['added'] for i in p['imported'])} added" + (
            f", {len(p['rejected'])} files rejected" if p["rejected"] else ""
        )
    if "submitted" in p:
        return f"{len(p['submitted'])} batches submitted"
    if isinstance(p.get("batches"), list):
        return f"{len(p['batches'])} batches, {p['records']} records"
    if p.get("stage") == "waiting for members":  # a coordinator's federation
        return f"{p['members']}/{p['expected']} members joined"
    if p.get("stage") == "running":
        return f"{p['members']} members, round 1 running"
    if p.get("stage") in ("joined", "round"):
        return f"round {p.get('round', 0)}/{p['rounds']}"
    if "update" in p and "round" in p:  # a member's round of training, done
        return f"round {p['round']} trained on {p['examples']} records"
    if "adapter_id" in p:
        return f"adapter {p['adapter_id'][:16]}"
    if "federation" in p and isinstance(p.get("rounds"), list):  # a member's part, done
        return f"took part in {len(p['rounds'])} rounds"
    if "done" in p and "total" in p:
        return f"{p.get('file', '')} {100 * p['done'] // max(1, p['total'])}%".strip()
    return ""
