"""`datanet doctor`: what this machine offers datanet, in one table, without unlocking anything.

For the person setting up a hospital node as much as for a contributor with a problem: Python, the data
directory and its permissions, the keyring backend (or the passphrase source a headless node will use),
SQLCipher, torch and the device training would use, the base models and the prover artefacts.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import stat
import sys
from dataclasses import dataclass

from client.cli.context import Context
from client.cli.output import table
from client.errors import ClientError
from client.unlock import keystore_for, passphrase_from_environment
from storage.errors import StorageError
from storage.vault import Vault

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("doctor", help="check this machine's setup (nothing is unlocked)").set_defaults(handler=cmd_doctor)


def _mode_ok(path: os.PathLike[str] | str, allowed: int) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) & ~allowed == 0


def _checks(ctx: Context) -> list[Check]:
    checks = [
        Check(
            "python",
            OK if sys.version_info >= (3, 11) else FAIL,
            f"{platform.python_version()} on {platform.system()} {platform.machine()}",
        )
    ]
    data = ctx.config.data_dir
    if Vault.exists(data):
        private = _mode_ok(data, 0o700) and _mode_ok(data / "keys.json", 0o600)
        checks.append(
            Check(
                "data dir",
                OK if private else WARN,
                f"{data} (vault present{'' if private else '; permissions wider than 0700/0600'})",
            )
        )
    else:
        checks.append(Check("data dir", OK, f"{data} (no vault yet: the first command creates one)"))
    try:
        keystore = keystore_for(ctx.config)
    except ClientError as exc:
        checks.append(Check("keyring", FAIL, str(exc)))
        keystore = None
    if keystore is not None:
        checks.append(Check("keyring", OK, keystore.backend_name.removeprefix("keyring.backends.")))
    else:
        try:
            source = "given" if passphrase_from_environment(ctx.env) else None
        except ClientError as exc:
            checks.append(Check("passphrase", FAIL, str(exc)))
        else:
            tty = sys.stdin.isatty()
            checks.append(
                Check(
                    "keyring",
                    WARN if source or tty else FAIL,
                    "none usable: the vault is unlocked by a passphrase ("
                    + (
                        "from the environment"
                        if source
                        else "asked on the terminal"
                        if tty
                        else "none given: set DATANET_PASSPHRASE_FILE"
                    )
                    + ")",
                )
            )
    from sqlcipher3 import dbapi2

    connection = dbapi2.connect(":memory:")
    version = connection.execute("PRAGMA cipher_version").fetchone()
    connection.close()
    checks.append(
        Check(
            "sqlcipher",
            OK if version else FAIL,
            f"SQLCipher {version[0] if version else 'missing'}, SQLite {dbapi2.sqlite_version}",
        )
    )
    if importlib.util.find_spec("torch") is None:
        checks.append(Check("training", WARN, "torch not installed: pip install 'datanet-client[train]'"))
    else:
        import torch

        device = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU (no CUDA device)"
        checks.append(Check("training", OK, f"torch {torch.__version__}, would train on {device}"))
        from client.training.base_models import MODELS, prepare

        for name in ("minilm-l6",):
            try:
                prepare(name, ctx.config.cache_dir)
                checks.append(Check(f"model {name}", OK, f"{MODELS[name].source}, hash matches its pin"))
            except ClientError as exc:
                checks.append(Check(f"model {name}", WARN, str(exc)))
    checks.append(_prover_check())
    from prover import artifacts

    for circuit in artifacts.CIRCUITS:
        try:
            found = artifacts.load(circuit)
            checks.append(Check(f"prover {circuit}", OK, f"{found.constraints:,} constraints, keys match manifest"))
        except Exception as exc:  # any artefact problem is this check's finding
            checks.append(Check(f"prover {circuit}", FAIL, str(exc)))
    node = shutil.which("node")
    checks.append(
        Check("node", OK if node else WARN, node or "not found (needed only for the test suite's snarkjs cross-checks)")
    )
    return checks


def _prover_check() -> Check:
    """Which prover `datanet prove` would use here (DATANET_PROVER, or native where mcl loads)."""
    from prover import groth16, native
    from prover.errors import ProverError

    try:
        requested = groth16.requested_backend()
    except ProverError as exc:
        return Check("prover", FAIL, str(exc))
    if requested == "groth16py":
        return Check("prover", OK, "groth16py (DATANET_PROVER), single-threaded")
    try:
        native.load_library()
    except native.NativeUnavailable as exc:
        status = FAIL if requested == "native" else WARN
        return Check("prover", status, f"groth16py, single-threaded: the native prover cannot run here ({exc})")
    return Check("prover", OK, f"native (mcl MSMs on 2 threads), {os.cpu_count()} cores")


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> int:
    try:
        checks = _checks(ctx)
    except StorageError as exc:
        checks = [Check("vault", FAIL, str(exc))]
    failed = any(c.status == FAIL for c in checks)
    ctx.out.emit(
        {"ok": not failed, "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in checks]},
        table([[c.name, c.status, c.detail] for c in checks], ["CHECK", "STATUS", "DETAIL"]),
    )
    return 1 if failed else 0
