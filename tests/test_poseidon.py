"""Poseidon against circomlibjs: the committed vectors, and (with Node) a fresh export."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from prover.errors import InputOutOfField
from prover.poseidon import FIELD, poseidon

VECTORS = Path(__file__).parent / "vectors" / "poseidon.json"
PROVER_JS = Path(__file__).resolve().parent.parent / "prover" / "js"


def test_matches_circomlibjs_vectors() -> None:
    vectors = json.loads(VECTORS.read_text())
    assert len(vectors) >= 30
    for case in vectors:
        assert poseidon(*map(int, case["inputs"])) == int(case["hash"]), case["inputs"]


def test_the_well_known_value() -> None:
    # Poseidon(1, 2) is quoted across circomlib's ecosystem (and Semaphore's tests).
    assert poseidon(1, 2) == 7853200120776062878684798364095072458815029376092732009249414926327459813530


def test_inputs_must_be_field_elements() -> None:
    with pytest.raises(InputOutOfField):
        poseidon(FIELD)
    with pytest.raises(ValueError, match="1 to 4 inputs"):
        poseidon()


def test_committed_constants_and_vectors_are_what_circomlibjs_exports(tmp_path: Path) -> None:
    """Re-run the export script against the pinned circomlibjs and compare with what is committed."""
    constants = PROVER_JS.parent / "poseidon_constants.json"
    before = (constants.read_bytes(), VECTORS.read_bytes())
    subprocess.run(["node", "export_poseidon.mjs"], cwd=PROVER_JS, check=True, capture_output=True, timeout=120)
    assert (constants.read_bytes(), VECTORS.read_bytes()) == before
