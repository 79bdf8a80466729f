"""Shared fixtures: isolated data directories, a fast Argon2 cost for unit tests, and a CLI runner.

The CLI runner starts the real `datanet` entry point in a subprocess with a controlled environment (no TTY, no
inherited DATANET_* variables), which is how a user, a script or systemd runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage.key_file import Argon2Params
from storage.keystore import MemoryKeyStore, OsKeyring, os_keyring

FAST_ARGON2 = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def memory_keystore() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def secret_service() -> OsKeyring:
    """The real Secret Service (gnome-keyring in a private D-Bus session, started by tests/with-keyring)."""
    keystore = os_keyring()
    if keystore is None:
        pytest.fail(
            "No Secret Service: run the tests with `make test` (tests/with-keyring starts a private gnome-keyring)."
        )
    assert "SecretService" in keystore.backend_name
    return keystore


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """Runs `datanet` in a subprocess against one data directory."""

    def __init__(self, data_dir: Path, config_dir: Path, env: Mapping[str, str]) -> None:
        self.data_dir = data_dir
        self.config_dir = config_dir
        self.env = dict(env)

    # A bound against a hung command, wide enough for a training run or the demo on a CI machine whose cores the
    # other test workers share (make check runs three).
    def run(self, *args: str, env: Mapping[str, str | None] | None = None, timeout: float = 400) -> Result:
        full_env = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        proc = subprocess.run(
            [sys.executable, "-m", "client.cli.main", *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
        result = self.run(*args, env=env)
        assert result.code == 0, f"datanet {' '.join(args)} failed ({result.code}): {result.stderr}"
        return result


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATANET_") and k != "CREDENTIALS_DIRECTORY"}
    env["DATANET_DATA_DIR"] = str(tmp_path / "data")
    env["DATANET_CONFIG_DIR"] = str(tmp_path / "config")
    env["PYTHONWARNINGS"] = "error"
    # The suite runs its workers beside the nodes it starts on a few cores: at the node's default nice 10 the nodes
    # lose the CPU to the workers and their tests time out. The default is tested on its own (test_node_jobs.py).
    env["DATANET_NODE_NICE"] = "0"
    return env


@pytest.fixture
def headless_cli(tmp_path: Path) -> Cli:
    """A machine with no keyring at all (no D-Bus session), like a hospital server."""
    env = clean_env(tmp_path)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    return Cli(tmp_path / "data", tmp_path / "config", env)


@pytest.fixture
def desktop_cli(tmp_path: Path, secret_service: OsKeyring) -> Cli:
    """A desktop session with the real Secret Service."""
    return Cli(tmp_path / "data", tmp_path / "config", clean_env(tmp_path))


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every vault file under a data directory with its bytes (to prove an operation changed nothing).

    The log directory is left out (logging a refusal is expected), and so is the node's folder: the node a
    command started records the refused job in its journal, by design."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).parts[0] not in ("logs", "node")
    }


@pytest.fixture(autouse=True)
def _stop_nodes_left_running(tmp_path: Path) -> Iterator[None]:
    """A command starts its data directory's node in the background when none runs (it would stop by itself
    after 10 idle minutes): stop every node a test left under its tmp_path, cleanly, before the next test."""
    yield
    from client.node import instance
    from client.node.control import ControlClient, NodeError, RemoteError

    for sock in tmp_path.rglob("node.sock"):
        data_dir = sock.parent
        pid = instance.recorded_pid(data_dir)
        try:
            ControlClient(data_dir, timeout=10).stop()
        except (NodeError, RemoteError, OSError):
            continue
        if pid is not None:
            instance.wait_exit(pid, 30)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the session: locally built and converted base models are reused across tests."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def train_cli(headless_cli: Cli, model_cache: Path) -> Cli:
    """A headless machine (passphrase in the environment) with the shared model cache."""
    headless_cli.env["DATANET_PASSPHRASE"] = "training tests passphrase"
    headless_cli.env["DATANET_CACHE_DIR"] = str(model_cache)
    return headless_cli
