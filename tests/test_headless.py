"""The headless node as systemd runs it: a real `datanet node run --headless` subprocess with no terminal, its
passphrase in a credential file ($CREDENTIALS_DIRECTORY), talking systemd's notification protocol to a socket the
test holds (readiness, watchdog pings, reload, stopping), SIGHUP reloading its configuration, SIGTERM ending it
cleanly, a wrong passphrase ending it with the documented exit code and every file as it was."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from client.node.control import ControlClient
from tests.conftest import REPO, Cli, clean_env

PASSPHRASE = "ward 7 night shift passphrase"
LISTEN = ("--listen", "/ip4/127.0.0.1/tcp/0")


@dataclass
class Notifications:
    """systemd's side of sd_notify: a datagram socket, every message kept in order."""

    path: Path
    messages: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.closed = False
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while not self.closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self.changed:
                self.messages.append(data.decode())
                self.changed.notify_all()

    def wait_for(self, line: str, after: int = 0, timeout: float = 60) -> int:
        """The index of the first message from `after` on holding `line`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for i, message in enumerate(self.messages[after:], start=after):
                    if line in message.splitlines():
                        return i
                left = deadline - time.monotonic()
                assert left > 0, f"no {line!r} from the node; got {self.messages[after:]}"
                self.changed.wait(left)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def start_node(cli: Cli, env: dict[str, str], notify: Notifications | None = None) -> subprocess.Popen[str]:
    run_env = dict(env)
    if notify is not None:
        run_env |= {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}  # a ping every 0.5 s
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "client.cli.main",
            "--json",
            "node",
            "run",
            "--headless",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
        env=run_env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # no controlling terminal, as under systemd
    )


@pytest.fixture
def hospital(tmp_path: Path) -> tuple[Cli, dict[str, str]]:
    env = clean_env(tmp_path)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)  # no keyring: a server
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "datanet-passphrase").write_text(PASSPHRASE)
    (credentials / "datanet-passphrase").chmod(0o400)
    env["CREDENTIALS_DIRECTORY"] = str(credentials)
    cli = Cli(tmp_path / "data", tmp_path / "config", env)
    cli.config_dir.mkdir(parents=True)
    (cli.config_dir / "config.toml").write_text("[node]\nmdns = false\n")
    return cli, env


def every_file(data_dir: Path) -> dict[Path, bytes]:
    """Every file but the log, with its bytes (the journal, the audit log and the node's folder included)."""
    return {p: p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file() and "logs" not in p.parts}


def log_text(cli: Cli) -> str:
    return (cli.data_dir / "logs" / "datanet.log").read_text()


def test_a_headless_node_reports_to_systemd_reloads_on_sighup_and_stops_on_sigterm(
    hospital: tuple[Cli, dict[str, str]], tmp_path: Path
) -> None:
    cli, env = hospital
    notify = Notifications(tmp_path / "notify.sock")
    proc = start_node(cli, env, notify)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        assert json.loads(first)["peer_id"].startswith("12D3KooW")
        ready = notify.wait_for("READY=1")
        assert any(line.startswith("STATUS=online") for line in notify.messages[ready].splitlines())
        ping = notify.wait_for("WATCHDOG=1", after=ready)
        notify.wait_for("WATCHDOG=1", after=ping + 1)  # and again: fed from the node's loop

        health = cli.run("--json", "health", "--disk-free-mb", "1")
        assert health.code == 0, health.stdout + health.stderr
        assert health.json()["healthy"] is True and health.json()["online"] is True

        # SIGHUP: a changed log level applies at once; a listen address needs a restart, and says so.
        (cli.config_dir / "config.toml").write_text(
            '[node]\nmdns = false\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[log]\nlevel = "debug"\n'
        )
        before = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", after=before)
        notify.wait_for("READY=1", after=reloading)
        assert "configuration reloaded: log; needs a restart to change: node_listen" in log_text(cli)

        # A configuration that no longer reads: the node says so in its log and goes on with the one it has.
        (cli.config_dir / "config.toml").write_text("[node\nmdns = ")
        before = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1", after=before)
        assert "configuration not reloaded, the node keeps the one it has" in log_text(cli)
        assert ControlClient(cli.data_dir).call("status")["online"] is True
        assert proc.poll() is None

        before = len(notify.messages)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        notify.wait_for("STOPPING=1", after=before)
        assert "Traceback" not in err and "Traceback" not in log_text(cli)
        assert not (cli.data_dir / "node.sock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        notify.close()


def test_the_passphrase_never_reaches_the_nodes_children(hospital: tuple[Cli, dict[str, str]], tmp_path: Path) -> None:
    """A passphrase given in the environment is gone from it before the node starts the prover's processes (and
    was never in its control front's), none of them may write a core file; and `[limits] cpu_threads` caps the
    workers the job asked for."""
    cli, env = hospital
    (cli.config_dir / "config.toml").write_text("[node]\nmdns = false\n[limits]\ncpu_threads = 1\n")
    env = {k: v for k, v in env.items() if k != "CREDENTIALS_DIRECTORY"} | {"DATANET_PASSPHRASE": PASSPHRASE}
    cli.env.clear()
    cli.env.update(env)
    cli.ok("create", "ward", "--task", "intent-classification")
    rows = "".join(json.dumps({"text": f"note {n}", "label": f"l{n % 4}"}) + "\n" for n in range(16 * 6))
    (tmp_path / "ward.jsonl").write_text(rows)
    cli.ok("import", "ward", str(tmp_path / "ward.jsonl"))
    proc = start_node(cli, env)
    try:
        assert proc.stdout is not None and proc.stdout.readline()
        node = psutil.Process(proc.pid)
        job = cli.ok("--json", "prove", "ward", "--background", "--jobs", "2").json()
        seen: dict[int, bytes] = {}
        limits: dict[int, str] = {}
        control = ControlClient(cli.data_dir)
        while control.job(job["id"])["state"] in ("queued", "running"):
            for child in node.children(recursive=True):
                if child.pid not in seen:
                    try:
                        seen[child.pid] = Path(f"/proc/{child.pid}/environ").read_bytes()
                        limits[child.pid] = Path(f"/proc/{child.pid}/limits").read_text()
                    except OSError:
                        continue
            time.sleep(0.02)
        finished = control.job(job["id"])
        assert finished["state"] == "done" and finished["progress"]["workers"] == 1  # asked for 2
        assert seen, "the prove job started no process"
        fronts = [c.pid for c in node.children() if "client.node.front" in c.cmdline()]
        assert len(fronts) == 1 and fronts[0] in seen  # the control front, spawned before the vault was opened
        for environ in seen.values():
            assert PASSPHRASE.encode() not in environ and b"DATANET_PASSPHRASE=" not in environ
        for table in [*limits.values(), Path(f"/proc/{proc.pid}/limits").read_text()]:  # no core file, anywhere
            core = next(line for line in table.splitlines() if line.startswith("Max core file size"))
            assert core.split()[4:6] == ["0", "0"], core
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_a_wrong_passphrase_exits_3_and_changes_no_file(hospital: tuple[Cli, dict[str, str]], tmp_path: Path) -> None:
    cli, env = hospital
    cli.ok("create", "ward", "--task", "intent-classification")
    cli.ok("node", "stop")  # the node `create` started, stopped before the files are read
    files = every_file(cli.data_dir)
    wrong = tmp_path / "wrong"
    wrong.mkdir(mode=0o700)
    (wrong / "datanet-passphrase").write_text("not the passphrase at all")
    (wrong / "datanet-passphrase").chmod(0o400)
    proc = start_node(cli, env | {"CREDENTIALS_DIRECTORY": str(wrong)})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("datanet: ") and "passphrase" in lines[0], err
    assert every_file(cli.data_dir) == files
    assert not (cli.data_dir / "node.sock").exists()
    health = cli.run("health")  # a monitor is told why no node runs
    assert health.code == 3 and "could not unlock the vault" in health.stderr, health.stderr
    assert len(health.stderr.strip().splitlines()) == 1
