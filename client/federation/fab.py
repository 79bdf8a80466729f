"""The Flower app bundle (FAB) of a federation, built in memory, and its hash.

Flower ships a run's code to every SuperNode, which runs whatever its SuperLink sends. Ours carries no code: its
one file, `pyproject.toml`, names the ServerApp and ClientApp of this installed client
(client/federation/flower_app.py). Flower builds FABs byte for byte the same (fixed zip dates, sorted names), so
a member builds the FAB itself, and its SuperNode runs a run's app only when the hash of what the SuperLink
sent is that one (client/federation/guard.py): a coordinator cannot make a member run code of its own choosing,
and a member of another client version is told so before anything runs.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from importlib import metadata
from typing import Any, Final

PUBLISHER: Final = "datanet"
APP_NAME: Final = "datanet-federation"

# The run config a run may override (Flower refuses keys the FAB does not declare), with their defaults.
RUN_CONFIG: Final[dict[str, Any]] = {
    "federation": "",  # the federation's id
    "out-dir": "",  # where the ServerApp writes each round's adapter and report (the coordinator's data dir)
    "cache-dir": "",  # the base models' cache
    "base": "minilm-l6",
    "labels": "[]",  # JSON list of the label names, in head order
    "rounds": 2,
    "min-members": 2,
    "members": "{}",  # JSON {flower node id: peer id}, from the joins
    "seed": 0,
    "epochs": 3,
    "learning-rate": 0.01,
    "batch-size": 16,
    "dp-epsilon": 0.0,  # 0: no DP unless a member asks for it
    "eval": "",  # a JSONL file of held-out records the coordinator evaluates each round on
    "secagg-timeout": 600.0,  # seconds: a member's training of a round must end within it
    "threads": 1,
}


def _client_version() -> str:
    try:
        return metadata.version("datanet-client")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def pyproject() -> bytes:
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{APP_NAME}"',
        f'version = "{_client_version()}"',
        'description = "Datanet federated LoRA rounds (the code is the installed datanet-client)"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        f'publisher = "{PUBLISHER}"',
        "",
        "[tool.flwr.app.components]",
        'serverapp = "client.federation.flower_app:server_app"',
        'clientapp = "client.federation.flower_app:client_app"',
        "",
        "[tool.flwr.app.config]",
        *(f"{key} = {_toml_value(value)}" for key, value in RUN_CONFIG.items()),
        "",
    ]
    return "\n".join(lines).encode()


@functools.cache
def build() -> bytes:
    """The FAB's bytes (the same on every machine with this client version)."""
    return build_from(pyproject())


def build_from(project: bytes, files: dict[str, bytes] | None = None) -> bytes:
    """A FAB of a `pyproject.toml` (and other files: the tests' foreign app), by Flower's own builder (fixed zip
    dates, sorted names)."""
    with warnings.catch_warnings():  # flwr's imports and its file filter (pathspec) warn of deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        from flwr.cli.build import build_fab_from_files

        return build_fab_from_files({"pyproject.toml": project, **(files or {})})[0]


def sha256() -> str:
    return hashlib.sha256(build()).hexdigest()
