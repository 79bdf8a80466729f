"""`datanet submit`: prove a shard's pending records for the Datanet's on-chain id and submit every batch the
chain does not have yet.

A batch is marked submitted in the shard only after the chain confirms it (a receipt, or on a re-run the
chain's own record of the batch); an interrupted run, a chain that goes away mid-submission or a lost receipt
leave nothing marked, and running the command again resumes: batches already on chain are recognised, the rest
are sent. The shard must be bound to the Datanet (`create --on-chain`, `join`): proofs are made for the bound id,
and batches proved before the binding were proved again when it was made (`contribution.prove_for_binding`, which
this repeats only for a binding made by an older version). Submission only submits: it never re-proves a batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.chain.errors import ChainError
from client.chain.protocol import ChainClient
from client.chain.types import DatanetInfo
from client.contribution import prove_for_binding, prove_pending
from client.identity import Identity
from storage.shard import Shard

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Submitted:
    root: int
    count: int
    tx_hash: str | None  # None: found already on chain (an earlier run's receipt was lost)
    gas_used: int


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
    binding = shard.binding()
    if binding is None or binding.datanet_id != datanet.id:
        raise ChainError(
            f"Datanet {shard.info.name!r} here is not bound to Datanet {datanet.id} on this chain; bind it with "
            f"`datanet join {shard.info.name}` (or `datanet create {shard.info.name} --on-chain` as its owner)."
        )
    if prove_for_binding(shard, identity, data_dir) and on_progress is not None:
        on_progress("proved earlier batches again for the bound Datanet id")
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
            done.append(Submitted(root, batch.count, None, 0))
            continue
        if batch.datanet_id != datanet.id or batch.recipient != recipient:
            raise ChainError(
                f"Batch {batch.root.hex()[:16]} is proved for another Datanet or account; run `datanet prove "
                f"{shard.info.name}`  again (it proves earlier batches for the bound Datanet)."
            )
        result = chain.submit_batch(datanet.id, root, batch.count, commitment, batch.proof, per_batch)
        shard.mark_submitted(batch.root, chain_key, result.tx_hash, result.block)
        done.append(Submitted(root, batch.count, result.tx_hash, result.gas_used))
        logger.info("batch %s submitted in %s (%d gas)", batch.root.hex()[:16], result.tx_hash, result.gas_used)
        if on_progress is not None:
            on_progress(f"submitted batch {number}/{len(todo)}")
    return SubmitReport(datanet, len(proved), done, already, time.perf_counter() - started)
