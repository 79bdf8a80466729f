"""Reproducible compilation: the pinned solcjs (contracts/package.json + lock, installed by the test command)
compiles the sources again to exactly the committed artefacts the client loads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from client.chain import artifacts

REPO = Path(__file__).resolve().parent.parent


def test_contracts_recompile_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "contracts.json"
    subprocess.run(["node", "compile.mjs", str(out)], cwd=REPO / "contracts", check=True, capture_output=True)
    assert out.read_bytes() == artifacts.ARTIFACTS.read_bytes()


def test_artefacts_name_their_compiler_settings_and_sources() -> None:
    doc = json.loads(artifacts.ARTIFACTS.read_text())
    assert doc["compiler"].startswith("solc 0.8.37+")
    assert doc["settings"]["evmVersion"] == "cancun"
    assert doc["settings"]["metadata"] == {"bytecodeHash": "none", "appendCBOR": False}
    for source in doc["sources"]:
        # OpenZeppelin's sources come from the pinned package (contracts/package.json), ours from the repository.
        folder = REPO / "contracts" / "node_modules" if source.startswith("@openzeppelin/") else REPO
        assert (folder / source).is_file(), source
    lock = json.loads((REPO / "contracts" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@openzeppelin/contracts"]["version"] == "5.7.0"
    names = ("DatanetRegistry", "ContributionLedger", "ContributionVerifier", "MembershipVerifier", "PoseidonT3")
    for name in (*names, "DatanetToken", "DatanetGovernor", "TimelockController", "MemberPolls"):
        compiled = artifacts.contract(name)
        assert compiled.bytecode.startswith("0x") and len(compiled.bytecode) > 100
