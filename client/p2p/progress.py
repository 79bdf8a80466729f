"""What a sync session reports: its progress events and its result (plain values)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SyncProgress:
    datanet: str
    peer: str
    phase: str  # "reconcile" | "fetch" | "serve" | "done"
    records_done: int
    records_left: int
    bytes_done: int
    bytes_left: int  # estimated from the mean size of the records received so far
    rate: float  # records per second so far
    eta: float | None  # seconds


@dataclass
class SyncResult:
    datanet: str
    peer: str
    received: int = 0
    sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    rounds: int = 0
    batches_carried: int = 0  # batch claims the peer carried (stored unverified)
    batches_received: int = 0  # carried batch claims that verified and were kept
    batches_sent: int = 0
    verify_seconds: float = 0.0  # spent checking carried batches after the session (off the event loop)
    progress: list[SyncProgress] = field(default_factory=list)


ProgressCallback = Callable[[SyncProgress], None]


class Reporter:
    """Turns a session's counts into SyncProgress events, at most four a second (and always the last)."""

    def __init__(self, result: SyncResult, on_progress: ProgressCallback | None) -> None:
        self.result = result
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, phase: str, done: int, left: int, byte_count: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.25:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        bytes_left = round(left * byte_count / done) if done else 0
        event = SyncProgress(
            self.result.datanet,
            self.result.peer,
            phase,
            done,
            left,
            byte_count,
            bytes_left,
            rate,
            left / rate if rate else None,
        )
        self.result.progress.append(event)
        if self.on_progress is not None:
            self.on_progress(event)
