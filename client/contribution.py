"""Turning a shard's pending records into proven contribution batches (the prover's job on a Datanet).

Records not yet in any batch are taken in import order, 16 at a time; each batch gets its Poseidon root, a
Groth16 proof bound to (Datanet id, recipient), snarkjs `proof.json`/`public.json` files, and a row in the
shard, committed together with the records' batch membership (one transaction per batch, so an interrupted run
loses at most the batch in progress and re-running resumes).

Until the Datanet is registered on chain (Chain issue), its id is derived locally from its uuid; the chain's
submission proves again for the on-chain id (the batch root and membership stay the same).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.identity import Identity
from prover.commitment import record_digest
from prover.poseidon import FIELD
from prover.proofs import BATCH_CAPACITY, BatchRecord, prove_contribution
from storage.key_file import write_private_file
from storage.shard import Batch, Shard

logger = logging.getLogger(__name__)
PROOFS_DIR = "proofs"


def local_datanet_id(shard_uuid: str) -> int:
    return int.from_bytes(hashlib.sha256(f"datanet:{shard_uuid}".encode()).digest(), "big") % FIELD


@dataclass(frozen=True, slots=True)
class ProvedBatch:
    root: int
    count: int
    folder: Path
    seconds: float


def prove_pending(
    shard: Shard,
    identity: Identity,
    data_dir: Path,
    *,
    limit: int | None,
    datanet_id: int | None = None,
    on_batch: Callable[[ProvedBatch, int, int], None] | None = None,
) -> list[ProvedBatch]:
    """Prove the shard's pending records (at most `limit`), a batch of 16 at a time."""
    pending = shard.pending(limit)
    public = identity.public()
    chosen_id = local_datanet_id(shard.info.uuid) if datanet_id is None else datanet_id
    recipient = int(public.evm_address, 16)
    batches = [pending[i : i + BATCH_CAPACITY] for i in range(0, len(pending), BATCH_CAPACITY)]
    done: list[ProvedBatch] = []
    for number, chunk in enumerate(batches, start=1):
        started = time.perf_counter()
        records = [BatchRecord(record_digest(record_id), salt) for record_id, salt in chunk]
        result = prove_contribution(
            secret=identity.zk_secret,
            commitment=public.identity_commitment,
            records=records,
            datanet_id=chosen_id,
            recipient=recipient,
        )
        root_bytes = result.batch_root.to_bytes(32, "big")
        folder = data_dir / PROOFS_DIR / shard.info.uuid / root_bytes.hex()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = folder.with_name(folder.name + ".tmp")
        result.proof.write(staging)
        for name in ("proof.json", "public.json"):
            write_private_file(folder / name, (staging / name).read_bytes())
            (staging / name).unlink()
        staging.rmdir()
        shard.add_batch(
            Batch(
                root=root_bytes,
                count=result.count,
                created_at_ms=int(time.time() * 1000),
                datanet_id=chosen_id,
                recipient=recipient,
                proof=result.proof.proof,
                public_signals=result.proof.public_signals,
                status="proved",
            ),
            [record_id for record_id, _ in chunk],
        )
        proved = ProvedBatch(result.batch_root, result.count, folder, time.perf_counter() - started)
        done.append(proved)
        logger.info("batch %s of %d records proved in %.2fs", root_bytes.hex()[:16], result.count, proved.seconds)
        if on_batch is not None:
            on_batch(proved, number, len(batches))
    return done
