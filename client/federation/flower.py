"""Flower's processes as the node runs them: the coordinator's SuperLink (TLS, SuperNode authentication, its state
in an SQLite file of the federation's folder, no per-run dependency installation) and a member's SuperNode
(through client/federation/guard.py), each in its own session, logging to a 0600 file, stopped with its group.

Flower is told to stay home: no telemetry, no update check (both call out by default), `FLWR_HOME` inside the
data directory. None of the node's `DATANET_*` variables (a passphrase could be one) reach these processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from client.federation.errors import FlowerFailed

logger = logging.getLogger(__name__)
READY_TIMEOUT = 60.0  # seconds for a SuperLink to answer after it starts (about 3 s here)
QUIET = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",  # its SuperExec looks for a task to start every 0.2 s, not 1 s
}
PASSED_ON = ("DATANET_FEDERATION_RECORD",)  # the one DATANET_* variable Flower's processes see (a diagnostic)


def quiet_flower(home: Path) -> None:
    """Before flwr is imported in this process (the coordinator's node talks to its SuperLink's Control API)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.update(QUIET)
    os.environ["FLWR_HOME"] = str(home)


def load_flwr() -> None:
    """Import the parts of flwr this process uses, once: its imports warn (click's deprecations), which must not
    end a node whose warnings are errors (the tests run so)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import flwr.cli.build
        import flwr.cli.typing
        import flwr.cli.utils
        import flwr.common.serde
        import flwr.proto.control_pb2
        import flwr.supercore.fab
        import flwr.supercore.primitives.asymmetric  # noqa: F401


def environment(home: Path, **extra: str) -> dict[str, str]:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATANET_") or k in PASSED_ON}
    env.pop("PYTHONWARNINGS", None)  # Flower's own deprecation notices must not end its processes (the tests' "error")
    env.update(QUIET)
    env["FLWR_HOME"] = str(home)
    # Flower starts its helpers (flower-superexec, flwr-clientapp) by name: this environment's first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True, close_fds=True
        )
    finally:
        os.close(fd)


def stop(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> int | None:
    """Stop a Flower process and every process it started (its session's group); its exit code."""
    if process is None:
        return None
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    with contextlib.suppress(ProcessLookupError):  # its children (SuperExec, app processes) may outlive it
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def log_tail(log: Path, lines: int = 5) -> str:
    """The last few lines of a Flower log, for our own log (never shown to the user: they may name paths)."""
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class SuperLink:
    """The coordinator's SuperLink and a Control API client for it."""

    def __init__(self, folder: Path, host: str, port: int, tls: tuple[Path, Path, Path]) -> None:
        self.folder = folder
        self.address = f"{host}:{port}"
        self.ca, cert, key = tls
        self.log = folder / "superlink.log"
        args = [
            *(sys.executable, "-m", "client.federation.guard", "link"),
            "--host",
            host,
            "--port",
            str(port),
            "--ssl-ca-certfile",
            str(self.ca),
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(key),
            "--enable-supernode-auth",
            "--database",
            str(folder / "superlink.db"),
            "--disable-runtime-dependency-installation",
        ]
        self.process: subprocess.Popen[bytes] | None = _spawn(args, environment(folder / "flwr-link"), self.log)
        self._client: Any = None
        load_flwr()

    def _control(self) -> Any:
        if self._client is None:
            # flwr's client prints "Using SuperLink: ..." on stdout (a node's stdout is its ready line, or nothing)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore", DeprecationWarning)
                from flwr.cli.typing import SuperLinkConnection
                from flwr.cli.utils import init_http_client_from_connection

                self._client = init_http_client_from_connection(
                    SuperLinkConnection(name="datanet", address=self.address, root_certificates=str(self.ca.resolve()))
                )
        return self._client

    def wait_ready(self, should_stop: Any) -> None:
        from flwr.proto.control_pb2 import ListRunsRequest

        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.check_alive()
            try:
                self._control().ListRuns(ListRunsRequest())
                return
            except Exception as exc:  # not listening yet: httpx and Flower's own errors share no base class
                if time.monotonic() > deadline or should_stop():
                    logger.warning("SuperLink not ready: %s; log: %s", type(exc).__name__, log_tail(self.log))
                    raise FlowerFailed(
                        f"Flower's SuperLink did not start on {self.address}; is the port free? "
                        "(its log is in the federation's folder)"
                    ) from None
                time.sleep(0.5)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            logger.warning("SuperLink exited %s; log: %s", self.process.returncode, log_tail(self.log))
            raise FlowerFailed(
                f"Flower's SuperLink stopped (exit code {self.process.returncode}); is port "
                f"{self.address.rsplit(':', 1)[1]} free? (its log is in the federation's folder)"
            )

    def register(self, public_key: str, name: str) -> int:
        """Allow the SuperNode that signs with `public_key` (OpenSSH line); its Flower node id."""
        from cryptography.hazmat.primitives import serialization
        from flwr.proto.control_pb2 import RegisterNodeRequest
        from flwr.supercore.primitives.asymmetric import public_key_to_bytes

        key = serialization.load_ssh_public_key(public_key.encode())
        response = self._control().RegisterNode(
            request=RegisterNodeRequest(public_key=public_key_to_bytes(key), name=name)  # type: ignore[arg-type]
        )
        if not response.node_id:
            raise FlowerFailed("Flower's SuperLink did not register the member's key.")
        return int(response.node_id)

    def submit(self, fab_bytes: bytes, overrides: dict[str, Any]) -> int:
        from flwr.common.serde import fab_to_proto, user_config_to_proto
        from flwr.proto.control_pb2 import StartRunRequest
        from flwr.supercore.fab import Fab

        fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
        response = self._control().StartRun(
            StartRunRequest(fab=fab_to_proto(fab), override_config=user_config_to_proto(overrides))
        )
        return int(response.run_id)

    def run_status(self, run_id: int) -> tuple[str, str, str]:
        """(status, sub-status, details): pending|starting|running|finished, and completed|failed|stopped."""
        from flwr.proto.control_pb2 import ListRunsRequest

        run = self._control().ListRuns(ListRunsRequest(run_id=run_id)).run_dict[run_id]
        return str(run.status.status), str(run.status.sub_status), str(run.status.details)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        stop(self.process)
        self.process = None


def start_supernode(
    folder: Path, superlink: str, ca: Path, key: Path, *, data_dir: Path, federation: str, fab_sha256: str
) -> subprocess.Popen[bytes]:
    """A member's SuperNode (guarded: it runs this client's own app only), its ClientApp told where the node is."""
    config = f'data-dir="{data_dir}" work-dir="{folder}" federation="{federation}"'
    args = [
        *(sys.executable, "-m", "client.federation.guard", "node"),
        "--superlink",
        superlink,
        "--root-certificates",
        str(ca),
        "--auth-supernode-private-key",
        str(key),
        "--port",
        str(free_port()),
        "--node-config",
        config,
    ]
    env = environment(folder / "flwr-node", DATANET_FAB_SHA256=fab_sha256)
    return _spawn(args, env, folder / "supernode.log")
