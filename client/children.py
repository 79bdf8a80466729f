"""What every worker process the node starts does first: leave when the node is gone, and yield the CPU to it; and
what every datanet process does first of all: write no core dump (one would hold keys and records in the clear)."""

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


def no_core_dumps() -> None:
    """No core file for this process and every process it starts (the limit is inherited): a crash of the node,
    the prover or the trainer must not leave their memory (keys, records) on disk."""
    try:
        import resource
    except ImportError:  # Windows: no core files to turn off
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
