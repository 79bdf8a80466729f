"""Turning a shard's pending records into proven contribution batches (the prover's job on a Datanet).

Records not yet in any batch are taken in import order, 16 at a time (proved on every core: proving is
single-threaded); each batch gets its Poseidon root, a
Groth16 proof bound to (Datanet id, recipient), snarkjs `proof.json`/`public.json` files, and a row in the
shard, committed together with the records' batch membership (one transaction per batch, so an interrupted run
loses at most the batch in progress and re-running resumes).

Proofs are bound to the shard's on-chain Datanet id once the shard is bound (`create --on-chain`, `join`);
until then to an id derived locally from its uuid. Binding proves every earlier batch again, once, for the bound
id (`prove_for_binding`: same root, same records), replacing the stored proof first and then its files, which are
always rewritten from the shard (`refresh_proof_files`), so they are never left stale. Only own records (imported
here) are ever proven: received records are someone else's contribution.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from client.children import follow_parent
from client.identity import Identity
from prover.commitment import record_digest
from prover.poseidon import FIELD
from prover.proofs import BATCH_CAPACITY, BatchRecord, ContributionProof, Proof, prove_contribution
from storage.errors import StorageError
from storage.key_file import write_private_file
from storage.shard import Batch, Shard

logger = logging.getLogger(__name__)
PROOFS_DIR = "proofs"


def local_datanet_id(shard_uuid: str) -> int:
    return int.from_bytes(hashlib.sha256(f"datanet:{shard_uuid}".encode()).digest(), "big") % FIELD


def bound_datanet_id(shard: Shard) -> int:
    """The Datanet id proofs of this shard are bound to: the on-chain id once bound, else a local one."""
    binding = shard.binding()
    return local_datanet_id(shard.info.uuid) if binding is None else binding.datanet_id


@dataclass(frozen=True, slots=True)
class ProvedBatch:
    root: int
    count: int
    folder: Path
    seconds: float


def _prove_chunk(
    secret: int, commitment: int, chunk: list[tuple[bytes, int]], datanet_id: int, recipient: int
) -> tuple[ContributionProof, float]:
    started = time.perf_counter()
    records = [BatchRecord(record_digest(record_id), salt) for record_id, salt in chunk]
    result = prove_contribution(
        secret=secret, commitment=commitment, records=records, datanet_id=datanet_id, recipient=recipient
    )
    return result, time.perf_counter() - started


def prove_pending(
    shard: Shard,
    identity: Identity,
    data_dir: Path,
    *,
    limit: int | None,
    datanet_id: int | None = None,
    workers: int = 1,
    on_batch: Callable[[ProvedBatch, int, int], None] | None = None,
    stop: threading.Event | None = None,
    isolate: bool = False,
) -> list[ProvedBatch]:
    """Prove the shard's pending records (at most `limit`), a batch of 16 at a time, on up to `workers` cores.

    Each batch is stored as soon as its proof is back, in order, so an interruption keeps every batch before it.
    With `isolate` (the node) the proving always runs in child processes, one worker included: in the calling
    process it would hold the GIL the node's event loop needs.
    """
    pending = shard.pending(limit)
    public = identity.public()
    chosen_id = bound_datanet_id(shard) if datanet_id is None else datanet_id
    recipient = int(public.evm_address, 16)
    chunks = [pending[i : i + BATCH_CAPACITY] for i in range(0, len(pending), BATCH_CAPACITY)]
    args = [(identity.zk_secret, public.identity_commitment, chunk, chosen_id, recipient) for chunk in chunks]
    done: list[ProvedBatch] = []
    pool = None
    if chunks and (isolate or (workers > 1 and len(chunks) > 2)):
        # Proving is single-threaded: one process per core. Each worker loads the keys once (about 0.5 s).
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=follow_parent,
            initargs=(os.getpid(),),
        )
        results: Iterator[tuple[ContributionProof, float]] = pool.map(_prove_chunk, *zip(*args, strict=True))
    else:
        results = (_prove_chunk(*a) for a in args)
    try:
        for number, (chunk, (result, seconds)) in enumerate(zip(chunks, results, strict=True), start=1):
            proved = _store(shard, data_dir, chunk, result, chosen_id, recipient, seconds)
            done.append(proved)
            if on_batch is not None:
                on_batch(proved, number, len(chunks))
            if stop is not None and stop.is_set():  # the node is stopping: the rest waits for the next run
                break
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return done


def _store(
    shard: Shard,
    data_dir: Path,
    chunk: list[tuple[bytes, int]],
    result: ContributionProof,
    datanet_id: int,
    recipient: int,
    seconds: float,
) -> ProvedBatch:
    root_bytes = result.batch_root.to_bytes(32, "big")
    folder = proof_folder(data_dir, shard, root_bytes)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, content in result.proof.files().items():
        write_private_file(folder / name, content)
    shard.add_batch(
        Batch(
            root=root_bytes,
            count=result.count,
            created_at_ms=int(time.time() * 1000),
            datanet_id=datanet_id,
            recipient=recipient,
            proof=result.proof.proof,
            public_signals=result.proof.public_signals,
            status="proved",
        ),
        [record_id for record_id, _ in chunk],
    )
    logger.info("batch %s of %d records proved in %.2fs", root_bytes.hex()[:16], result.count, seconds)
    return ProvedBatch(result.batch_root, result.count, folder, seconds)


def proof_folder(data_dir: Path, shard: Shard, root: bytes) -> Path:
    return data_dir / PROOFS_DIR / shard.info.uuid / root.hex()


def refresh_proof_files(shard: Shard, data_dir: Path) -> int:
    """Rewrite every own batch's proof.json/public.json that is missing or differs from the shard (the source of
    truth); returns how many folders were rewritten."""
    rewritten = 0
    for batch in shard.batches():
        files = Proof("contribution", batch.proof, batch.public_signals).files()
        folder = proof_folder(data_dir, shard, batch.root)
        if all((folder / name).is_file() and (folder / name).read_bytes() == data for name, data in files.items()):
            continue
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, data in files.items():
            write_private_file(folder / name, data)
        rewritten += 1
    return rewritten


def prove_for_binding(shard: Shard, identity: Identity, data_dir: Path) -> int:
    """Prove again, once, every own batch whose proof is bound to another Datanet id or recipient than the shard's
    binding and this identity's account (a batch proved before the Datanet was on chain). The proof in the shard
    is replaced first, then its files. Returns how many batches were proved again."""
    binding = shard.binding()
    if binding is None:  # nothing to prove again for: proofs of an unbound shard stay as they were made
        refresh_proof_files(shard, data_dir)
        return 0
    datanet_id = binding.datanet_id
    recipient = int(identity.public().evm_address, 16)
    commitment = identity.public().identity_commitment
    again = 0
    for batch in shard.batches():
        if batch.datanet_id == datanet_id and batch.recipient == recipient:
            continue
        members = shard.batch_members(batch.root)
        result = prove_contribution(
            secret=identity.zk_secret,
            commitment=commitment,
            records=[BatchRecord(record_digest(record_id), salt) for record_id, salt in members],
            datanet_id=datanet_id,
            recipient=recipient,
        )
        if result.batch_root.to_bytes(32, "big") != batch.root:
            raise StorageError(
                f"Batch {batch.root.hex()[:16]}'s records no longer hash to its root; run `datanet vault check`."
            )
        shard.replace_proof(batch.root, datanet_id, recipient, result.proof.proof, result.proof.public_signals)
        again += 1
        logger.info("batch %s proved again for the bound Datanet id", batch.root.hex()[:16])
    refresh_proof_files(shard, data_dir)
    return again
