"""What the node tells its service manager: systemd's notification protocol (`Type=notify`), through the kept
`sdnotify` package.

`READY=1` once the control socket answers, `STATUS=` lines a person sees in `systemctl status`, `WATCHDOG=1` from
the node's own trio loop at half the watchdog interval (a loop that stalls stops pinging and systemd restarts the
node), `RELOADING=1` and `READY=1` around a SIGHUP's reload, `STOPPING=1` on the way out. Without `NOTIFY_SOCKET`
(not under systemd) every call does nothing.

The variables systemd set are removed from the environment once read (what `sd_notify(unset_environment=1)`
does), so the node's children never talk to systemd in its name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

import sdnotify
import trio

logger = logging.getLogger(__name__)

_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Supervisor:
    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.watchdog_every = _watchdog_interval(env)
        # sdnotify reads NOTIFY_SOCKET when it is made: made before the variables go.
        self._notifier = sdnotify.SystemdNotifier() if env.get("NOTIFY_SOCKET") else None
        for name in _SYSTEMD_VARIABLES:
            env.pop(name, None)

    def notify(self, *lines: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        self.notify("RELOADING=1", "STATUS=reloading the configuration")

    def stopping(self, why: str) -> None:
        self.notify("STOPPING=1", f"STATUS=stopping ({why})")

    async def keep_watchdog(self) -> None:
        """Pings from the node's loop; returns at once where no watchdog was asked for."""
        if self._notifier is None or self.watchdog_every is None:
            return
        logger.info("systemd watchdog: pinging every %.1f s", self.watchdog_every)
        while True:
            self.notify("WATCHDOG=1")
            await trio.sleep(self.watchdog_every)


def _watchdog_interval(env: MutableMapping[str, str]) -> float | None:
    """Half of `WATCHDOG_USEC` (systemd's advice), when it is meant for this process (`WATCHDOG_PID`)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
