"""The verification lane of carried provenance: after a sync session, every batch claim a peer carried is checked
off the event loop (its root recomputed from the records held here, its Groth16 proof verified, for the bound
Datanet's id when the shard is bound) before anything shows, uses or forwards it. The first claim that does not
check out drops all of that peer's unchecked claims and cuts the peer off."""

from __future__ import annotations

import time

import trio

from client.p2p.errors import ProtocolViolation
from client.p2p.frames import Limits
from client.p2p.progress import SyncResult
from client.provenance import claim_problem
from storage.provenance import BatchClaim
from storage.shard import Shard


async def verify_carried(shard: Shard, peer: str, result: SyncResult) -> None:
    """The verification lane, after a session: check every claim `peer` carried that is not checked yet (this
    session's, and any an interrupted one left) off the event loop, each root recomputed from the records held
    here and each proof verified (for the bound Datanet's id, when the shard is bound); keep them all, or, at the
    first that does not check out, none of that peer's unchecked claims, and cut the peer off (ProtocolViolation)."""
    store = shard.provenance
    pending = [claim for claim, _ in store.unverified(peer, limit=Limits().max_claims)]
    if not pending:
        return
    held = store.held(record_id for claim in pending for record_id, _ in claim.records)
    binding = shard.binding()
    expected = None if binding is None else binding.datanet_id

    def first_problem() -> tuple[BatchClaim, str] | None:
        for claim in pending:
            problem = claim_problem(claim, held, expected)
            if problem is not None:
                return claim, problem
        return None

    started = time.perf_counter()
    found = await trio.to_thread.run_sync(first_problem)
    result.verify_seconds += time.perf_counter() - started
    if found is not None:
        store.drop_unverified_from(peer)
        raise ProtocolViolation(
            f"The peer carried batch {found[0].root.hex()[:16]} that does not check out ({found[1]}); none of its "
            "batches were kept."
        )
    store.settle_all([claim.root for claim in pending], True)
    result.batches_received += len(pending)
