"""Errors raised by the prover; every message is one sentence a user can act on.

ProverError
├── InputOutOfField   a value is not a BN254 scalar (0 <= x < r)
├── NotInTree         a leaf or proof does not belong to the tree's root
└── TreeFull          an incremental tree has no room for another leaf
"""

from __future__ import annotations


class ProverError(Exception):
    exit_code = 1


class InputOutOfField(ProverError):
    pass


class NotInTree(ProverError):
    pass


class TreeFull(ProverError):
    pass


class WrongSecret(ProverError):
    pass


class CountMismatch(ProverError):
    pass


class ArtifactMismatch(ProverError):
    pass


class ProofInvalid(ProverError):
    pass
