"""`datanet submit`: prove a shard's pending records for the Datanet's on-chain id and submit every batch the
chain does not have yet.

A batch is marked submitted in the shard only after the chain confirms it (a receipt, or on a re-run the
chain's own record of the batch); an interrupted run, a chain that goes away mid-submission or a lost receipt
leave nothing marked, and running the command again resumes: batches already on chain are recognised, the rest
are sent. Batches proved earlier for a local id or another account are proved again for the on-chain id (the
root and the records stay the same).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.chain.client import ChainClient, DatanetInfo
from client.chain.errors import ChainError
from client.contribution import prove_pending
from client.identity import Identity
from prover.commitment import record_digest
from prover.proofs import BatchRecord, prove_contribution
from storage.shard import Batch, Shard

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Submitted:
    root: int
    count: int
    tx_hash: str | None  # None: found already on chain (an earlier run's receipt was lost)
    gas_used: int
    reproved: bool


@dataclass(frozen=True, slots=True)
class SubmitReport:
    datanet: DatanetInfo
    proved: int
    submitted: list[Submitted]
    already: int  # batches that were marked submitted on this chain before the run
    seconds: float


def submit_pending(
    shard: Shard,
    identity: Identity,
    data_dir: Path,
    chain: ChainClient,
    chain_key: str,
    datanet: DatanetInfo,
    *,
    stake: int | None = None,
    limit: int | None = None,
    workers: int = 1,
    on_progress: Callable[[str], None] | None = None,
) -> SubmitReport:
    started = time.perf_counter()
    me = chain.address
    if not chain.is_member(datanet.id, me):
        raise ChainError(
            f"Your account {me} is not a member of Datanet {datanet.name!r} on chain; join it with "
            f"`datanet join {datanet.name}` (a private Datanet's owner must allow-list you first)."
        )
    per_batch = datanet.batch_stake if stake is None else stake
    if per_batch < datanet.batch_stake:
        raise ChainError(f"Datanet {datanet.name!r} needs a stake of at least {datanet.batch_stake} wei per batch.")
    proved = prove_pending(shard, identity, data_dir, limit=limit, datanet_id=datanet.id, workers=workers)
    if proved and on_progress is not None:
        on_progress(f"proved {len(proved)} batch(es) of pending records")
    batches = shard.batches()
    already = sum(1 for b in batches if b.status == "submitted" and b.chain == chain_key)
    todo = [b for b in batches if not (b.status == "submitted" and b.chain == chain_key)]
    commitment = identity.public().identity_commitment
    recipient = int(me, 16)
    done: list[Submitted] = []
    for number, batch in enumerate(todo, start=1):
        root = int.from_bytes(batch.root, "big")
        on_chain = chain.batch(root)
        if on_chain is not None:
            if on_chain.contributor.lower() != me.lower():
                raise ChainError(f"Batch {root:#x} is on chain under another account ({on_chain.contributor}).")
            shard.mark_submitted(batch.root, chain_key, None, None)  # a re-run after a lost receipt
            done.append(Submitted(root, batch.count, None, 0, False))
            continue
        proof, reproved = _proof_for(shard, identity, batch, datanet.id, recipient)
        result = chain.submit_batch(datanet.id, root, batch.count, commitment, proof, per_batch)
        shard.mark_submitted(batch.root, chain_key, result.tx_hash, result.block)
        done.append(Submitted(root, batch.count, result.tx_hash, result.gas_used, reproved))
        logger.info("batch %s submitted in %s (%d gas)", batch.root.hex()[:16], result.tx_hash, result.gas_used)
        if on_progress is not None:
            on_progress(f"submitted batch {number}/{len(todo)}")
    return SubmitReport(datanet, len(proved), done, already, time.perf_counter() - started)


def _proof_for(shard: Shard, identity: Identity, batch: Batch, datanet_id: int, recipient: int) -> tuple[bytes, bool]:
    if batch.datanet_id == datanet_id and batch.recipient == recipient:
        return batch.proof, False
    members = shard.batch_members(batch.root)
    result = prove_contribution(
        secret=identity.zk_secret,
        commitment=identity.public().identity_commitment,
        records=[BatchRecord(record_digest(record_id), salt) for record_id, salt in members],
        datanet_id=datanet_id,
        recipient=recipient,
    )
    if result.batch_root.to_bytes(32, "big") != batch.root:
        raise ChainError(
            f"Batch {batch.root.hex()[:16]}'s records no longer hash to its root; run `datanet vault check`."
        )
    shard.replace_proof(batch.root, datanet_id, recipient, result.proof.proof, result.proof.public_signals)
    return result.proof.proof, True
