"""Checking contributors' batches carried by sync, and the provenance a member can show for a record.

A batch claim is trusted only when both hold:
- its root is recomputed here: every leaf `Poseidon(commitment, digest(record id), salt)` for records this shard
  holds (each record verified against its id when it was stored), under a batch tree of BATCH_LEVELS;
- its Groth16 `contribution` proof verifies for (root, count, commitment, Datanet id, recipient).

So a peer cannot attach a proof to other records, another commitment or another root. The check is pure apart
from the verifier; `verify_claims` runs it over a shard's unverified claims and settles each one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prover.commitment import record_digest
from prover.merkle import MerkleTree
from prover.poseidon import FIELD
from prover.proofs import BATCH_CAPACITY, BATCH_LEVELS, BatchRecord, Proof, batch_leaves, verify
from storage.provenance import BatchClaim
from storage.shard import Shard

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClaimRefused:
    root: bytes
    peer: str
    reason: str


def claim_problem(claim: BatchClaim, held: set[bytes], datanet_id: int | None = None) -> str | None:
    """Why a claim cannot be trusted, or None when it checks out (root recomputed, proof verified, and, for a shard
    bound to an on-chain Datanet, proved for that Datanet's id)."""
    if datanet_id is not None and claim.datanet_id != datanet_id:
        return f"it is proved for Datanet id {claim.datanet_id}, not this Datanet's {datanet_id}"
    if not 1 <= claim.count <= BATCH_CAPACITY:
        return f"it holds {claim.count} records (a batch holds 1 to {BATCH_CAPACITY})"
    ids = [record_id for record_id, _ in claim.records]
    if len(set(ids)) != len(ids):
        return "it lists a record twice"
    if not set(ids) <= held:
        return "it names records that are not held here"
    values = (claim.commitment, claim.datanet_id, claim.recipient, *(salt for _, salt in claim.records))
    if not all(0 <= v < FIELD for v in values) or int.from_bytes(claim.root, "big") >= FIELD:
        return "a value is outside the BN254 scalar field"
    if len(claim.proof) != 256:
        return "its proof is not 256 bytes"
    records = [BatchRecord(record_digest(record_id), salt) for record_id, salt in claim.records]
    if MerkleTree(batch_leaves(claim.commitment, records), BATCH_LEVELS).root != int.from_bytes(claim.root, "big"):
        return "its records do not hash to its root"
    try:
        ok = verify(Proof("contribution", claim.proof, claim.public_signals))
    except Exception:  # a malformed proof (points off the curve) is a proof that does not verify
        logger.debug("a carried proof could not be parsed", exc_info=True)
        ok = False
    if not ok:
        return "its proof does not verify"
    return None


def verify_claims(shard: Shard, *, limit: int = 10_000) -> tuple[int, list[ClaimRefused]]:
    """Check the shard's unverified claims: keep the ones that verify, delete the others (and every other
    unchecked claim from the same peer). Returns (verified, refused)."""
    store = shard.provenance
    verified = 0
    refused: list[ClaimRefused] = []
    cut: set[str] = set()
    expected = shard.binding()
    for claim, peer in store.unverified(limit=limit):
        if peer in cut:
            continue
        held = store.held(record_id for record_id, _ in claim.records)
        problem = claim_problem(claim, held, None if expected is None else expected.datanet_id)
        if problem is None:
            store.settle(claim.root, True)
            verified += 1
            continue
        store.settle(claim.root, False)
        dropped = store.drop_unverified_from(peer)
        cut.add(peer)
        refused.append(ClaimRefused(claim.root, peer, problem))
        logger.warning(
            "refused batch %s from peer %s: %s (%d other unchecked claims of that peer dropped)",
            claim.root.hex()[:16],
            peer,
            problem,
            dropped,
        )
    return verified, refused


def merkle_path(leaves: Sequence[tuple[bytes, int]], commitment: int, position: int) -> list[int]:
    """The sibling hashes from a leaf of a batch up to its root (the inclusion proof of one record)."""
    records = [BatchRecord(record_digest(record_id), salt) for record_id, salt in leaves]
    return list(MerkleTree(batch_leaves(commitment, records), BATCH_LEVELS).proof(position).siblings)
