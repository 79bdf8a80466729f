"""What every worker process the node starts does first: leave when the node is gone, and yield the CPU to it."""

from __future__ import annotations

import os
import threading
import time

BACKGROUND_NICE = 10  # workers yield the CPU to the node's sync and control API when it is contended (alone: as fast)


def follow_parent(parent: int, nice: int = BACKGROUND_NICE) -> None:
    """In a worker process: exit when the process that started it is gone (a SIGKILLed node must not leave workers
    behind, idle forever and holding its pipes), and run at a lower priority."""
    if nice:
        os.nice(nice)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="follow-parent").start()
