"""Proofs in snarkjs's JSON format, and the 256-byte calldata the snarkjs Solidity verifier takes.

Calldata: a.x, a.y, b.x.c1, b.x.c0, b.y.c1, b.y.c0, c.x, c.y, each a 32-byte big-endian integer (the EVM
orders the two coordinates of an Fp2 element highest first). snarkjs's `proof.json` writes G2 coordinates the
other way round and projective points with a trailing "1".
"""

from __future__ import annotations

import json
from typing import Any

from prover.errors import ProofInvalid

PROOF_BYTES = 256


def _words(proof: bytes) -> list[int]:
    if len(proof) != PROOF_BYTES:
        raise ProofInvalid(f"A Groth16 proof is {PROOF_BYTES} bytes, not {len(proof)}; the proof file is damaged.")
    return [int.from_bytes(proof[i : i + 32], "big") for i in range(0, PROOF_BYTES, 32)]


def to_snarkjs(proof: bytes) -> dict[str, Any]:
    ax, ay, bx1, bx0, by1, by0, cx, cy = _words(proof)
    return {
        "pi_a": [str(ax), str(ay), "1"],
        "pi_b": [[str(bx0), str(bx1)], [str(by0), str(by1)], ["1", "0"]],
        "pi_c": [str(cx), str(cy), "1"],
        "protocol": "groth16",
        "curve": "bn128",
    }


def from_snarkjs(doc: dict[str, Any]) -> bytes:
    try:
        a, b, c = doc["pi_a"], doc["pi_b"], doc["pi_c"]
        words = [a[0], a[1], b[0][1], b[0][0], b[1][1], b[1][0], c[0], c[1]]
        return b"".join(int(w).to_bytes(32, "big") for w in words)
    except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
        raise ProofInvalid("This is not a snarkjs Groth16 proof (proof.json); check the file.") from exc


def public_to_json(signals: list[int]) -> str:
    return json.dumps([str(s) for s in signals])


def public_from_json(text: str) -> list[int]:
    try:
        values = json.loads(text)
        return [int(v) for v in values]
    except (ValueError, TypeError) as exc:
        raise ProofInvalid("This is not a snarkjs public signals file (public.json); check the file.") from exc
