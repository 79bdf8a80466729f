"""The committed ceremony artefacts (prover/artifacts/), checked against their manifest before use.

    artifacts/manifest.json                 sha256 of every file, constraint counts, circuit source hashes
    artifacts/<circuit>/<circuit>.zkey      the phase-2 proving key (snarkjs format)
    artifacts/<circuit>/<circuit>.wasm      the witness calculator compiled by circom2
    artifacts/<circuit>/verification_key.json
    artifacts/<circuit>/<circuit>_verifier.sol

`prover/ceremony/regenerate` rebuilds them all; nothing here ever downloads or regenerates at run time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from prover.errors import ArtifactMismatch

Circuit = Literal["contribution", "membership"]
CIRCUITS: tuple[Circuit, ...] = ("contribution", "membership")
ROOT = Path(__file__).with_name("artifacts")
SOURCES = Path(__file__).with_name("circuits")


@dataclass(frozen=True, slots=True)
class Artifacts:
    circuit: Circuit
    zkey: Path
    wasm: Path
    verification_key: Path
    solidity_verifier: Path
    source: Path
    constraints: int
    zkey_sha256: str  # checked against the manifest at load
    source_sha256: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@cache
def load(circuit: Circuit, root: Path = ROOT) -> Artifacts:
    """The artefacts of one circuit, after checking every file against the manifest."""
    manifest_path = root / "manifest.json"
    try:
        entry = json.loads(manifest_path.read_text())["circuits"][circuit]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactMismatch(
            f"The prover artefacts for {circuit!r} are missing from {root}; reinstall datanet or run "
            "prover/ceremony/regenerate."
        ) from exc
    folder = root / circuit
    for name, expected in entry["files"].items():
        path = folder / name
        if not path.exists():
            raise ArtifactMismatch(f"The prover artefact {path} is missing; reinstall datanet.")
        if _sha256(path) != expected:
            raise ArtifactMismatch(
                f"The prover artefact {path} does not match its manifest (altered or corrupt); reinstall datanet."
            )
    source = SOURCES / f"{circuit}.circom"
    if _sha256(source) != entry["source_sha256"]:
        raise ArtifactMismatch(
            f"The circuit {source} changed since its keys were made; run prover/ceremony/regenerate."
        )
    return Artifacts(
        circuit=circuit,
        zkey=folder / f"{circuit}.zkey",
        wasm=folder / f"{circuit}.wasm",
        verification_key=folder / "verification_key.json",
        solidity_verifier=folder / f"{circuit}_verifier.sol",
        source=source,
        constraints=int(entry["constraints"]),
        zkey_sha256=entry["files"][f"{circuit}.zkey"],
        source_sha256=entry["source_sha256"],
    )
