"""The hospital node's systemd unit (packaging/systemd/datanet-node.service): `systemd-analyze verify` accepts it
and `systemd-analyze security` rates its exposure at 2.0 or under (installed by the test command: systemd)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

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
