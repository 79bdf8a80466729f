"""What the node writes to the audit log (storage/audit.py): records sent to a peer (their ids, as each answer
leaves), sessions refused at admission, proofs and transactions sent to a chain. A writer thread does the writing,
so neither the event loop nor the control API waits for it; `close` writes what is queued before the node stops.

    records.sent      datanet, peer, count (+ the record ids)      from the sync sessions, both roles
    admission.refused peer, reason                                  a session refused before anything was sent
    proofs.submitted  datanet, batch root, records, chain tx         a submit job's batches
    proof.sent        circuit "membership", poll                     an anonymous poll vote (its option is not kept)
    tx.sent           method, datanet, tx                            every other transaction this node sent
    adapter.sent      adapter id, datanet, peer                      an adapter shared with a member, as it left
    update.sent       federation, round, datanet                     a federated round's (masked) update

A vote's option, transaction and sending address are left out on purpose: they would tie this machine to its vote.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from storage.audit import AuditLog

logger = logging.getLogger(__name__)

_STOP = object()


class AuditWriter:
    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    # --- what happens (any thread; never blocks) ---------------------------------------------------------------

    def records_sent(self, datanet: str, peer: str, ids: list[bytes]) -> None:
        self._queue.put(("records.sent", {"datanet": datanet, "peer": peer}, ids))

    def adapter_sent(self, peer: str, adapter_id: str, datanet: str) -> None:
        self._queue.put(("adapter.sent", {"adapter": adapter_id, "datanet": datanet, "peer": peer}, []))

    def refused(self, peer: str, reason: str) -> None:
        self._queue.put(("admission.refused", {"peer": peer, "reason": reason}, []))

    def event(self, event: dict[str, Any]) -> None:
        """A node event (control.Events observer): the chain's transactions and the jobs that sent proofs."""
        kind = event.get("type")
        if kind == "chain.tx" and event.get("method") not in ("submitBatch", "poll.vote"):  # those: with their job
            details = {"method": event.get("method"), "datanet": event.get("datanet"), "tx": event.get("tx")}
            self._queue.put(("tx.sent", details, []))
        elif kind == "job" and event.get("state") == "done" and event.get("kind") == "submit":
            for sent in event.get("submitted") or []:
                if sent.get("tx"):
                    details = {"datanet": event.get("datanet"), "root": sent["root"], "records": sent["count"]}
                    self._queue.put(("proofs.submitted", {**details, "tx": sent["tx"]}, []))
        elif kind == "job" and event.get("state") == "done" and event.get("kind") == "fit_round":
            details = {k: event.get(k) for k in ("federation", "round", "datanet")}
            self._queue.put(("update.sent", details, []))
        elif kind == "job" and event.get("state") == "done" and event.get("kind") == "vote":
            self._queue.put(("proof.sent", {"circuit": "membership", "poll": event.get("poll")}, []))

    # --- the writer ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        held: tuple[str, dict[str, Any], list[bytes]] | None = None  # records.sent answers being gathered
        while True:
            try:
                item = self._queue.get(block=held is None)
            except queue.Empty:  # nothing more for now: what was gathered is one entry
                assert held is not None
                self._write(*held)
                held = None
                continue
            if held is not None and item is not _STOP and item[0] == "records.sent" and item[1] == held[1]:
                held = (held[0], held[1], held[2] + item[2])  # the same peer and Datanet: the same entry
                continue
            if held is not None:
                self._write(*held)
                held = None
            if item is _STOP:
                return
            if item[0] == "records.sent":
                held = item
            else:
                self._write(*item)

    def _write(self, kind: str, details: dict[str, Any], ids: list[bytes]) -> None:
        try:
            self.log.append(kind, {**details, **({"count": len(ids)} if ids else {})}, ids)
        except Exception:  # the node goes on; the failure is in its log (the audit's verify shows no gap for it)
            logger.exception("could not write an audit entry (%s)", kind)

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self.log.close()
