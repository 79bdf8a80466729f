"""Poseidon over the BN254 scalar field, exactly as circomlib defines it (the circuits use circomlib's).

The permutation (Grassi et al., "Poseidon", eprint 2019/458) with x^5 S-boxes, 8 full rounds and circomlib's
partial-round counts; state width t = inputs + 1 with a zero capacity element; the hash is the first state
element. Round constants and MDS matrices are circomlib's, exported to `poseidon_constants.json` by
`prover/js/export_poseidon.mjs`; tests/test_poseidon.py checks this code against circomlibjs's own outputs.
Pure Python: about a millisecond a hash.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from prover.errors import InputOutOfField

FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
MAX_INPUTS = 4
_CONSTANTS = Path(__file__).with_name("poseidon_constants.json")


@cache
def _parameters(t: int) -> tuple[int, int, tuple[int, ...], tuple[tuple[int, ...], ...]]:
    data = json.loads(_CONSTANTS.read_text())
    full, partial = int(data["full_rounds"]), int(data["partial_rounds"][str(t)])
    constants = tuple(int(c) for c in data["C"][str(t)])
    mds = tuple(tuple(int(x) for x in row) for row in data["M"][str(t)])
    return full, partial, constants, mds


def poseidon(*inputs: int) -> int:
    """circomlib's Poseidon of 1 to 4 field elements."""
    if not 1 <= len(inputs) <= MAX_INPUTS:
        raise ValueError(f"Poseidon takes 1 to {MAX_INPUTS} inputs, not {len(inputs)}")
    for value in inputs:
        if not 0 <= value < FIELD:
            raise InputOutOfField(f"{value} is not a BN254 scalar (it must be below the field modulus).")
    t = len(inputs) + 1
    full, partial, constants, mds = _parameters(t)
    p = FIELD
    state = [0, *inputs]
    half = full // 2
    for r in range(full + partial):
        offset = r * t
        state = [(s + constants[offset + i]) % p for i, s in enumerate(state)]
        if r < half or r >= half + partial:
            state = [pow(s, 5, p) for s in state]
        else:
            state[0] = pow(state[0], 5, p)
        state = [sum(m * s for m, s in zip(row, state, strict=True)) % p for row in mds]
    return state[0]
