"""The node's jobs: queued in the journal, run in lanes, one job at a time in each: `network` (syncs), `local`
(imports), `heavy` (proving and training, whose work runs in child processes) and `chain` (submissions and anonymous
poll votes), so a long training run never holds a sync or an import back. Any job can be cancelled: a queued one at
once, a running one at its next safe point. A job the node's stop interrupts goes back in the queue and resumes at
the next start (so does one a crash left "running": the journal's recovery at start, for the kinds in RESUMABLE).
The work itself is the application layer's (client/app/), run in a worker thread."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from client import failures
from client.app import contribution
from client.app import records as records_app
from client.app import training as training_app
from client.app.chain import ChainService
from client.app.governance import GovernanceService
from client.config import Config
from client.errors import ClientError
from client.identity import Identity
from client.node import control
from client.node.journal import Job, Journal
from client.node.peers import Peers
from client.p2p import sync
from client.p2p.errors import P2PError
from client.p2p.host import peer_info
from client.p2p.service import SyncService
from storage.vault import Vault

logger = logging.getLogger(__name__)

# Kinds a restart queues again: a sync keeps what it committed and asks for the rest; proving keeps every batch
# it stored and proves the rest; training resumes from its last checkpoint (same job id, same inputs); a
# submission never re-proves and finds a batch whose receipt was lost on chain. An import is not resumed (its
# client has gone): each file was one transaction, so running it again adds only what is missing.
RESUMABLE = {"sync", "prove", "train", "submit"}
PROGRESS_SAVE_EVERY = 1.0  # seconds between progress writes to the journal, per job
# each lane runs its jobs one at a time
LANES = {
    "sync": "network",
    "import": "local",
    "prove": "heavy",
    "train": "heavy",
    "submit": "chain",
    "vote": "chain",
    # federated rounds (client/federation/service.py): a coordinator's rounds, a member's part, its training
    "coordinate": "coordinator",
    "participate": "member",
    "fit_round": "heavy",
}


Progress = Callable[[dict[str, Any]], None]
Work = Callable[[dict[str, Any], threading.Event, Progress], "dict[str, Any] | None"]


class JobEnded(ClientError):
    """Cancelling a job that already ended."""


class Jobs:
    def __init__(
        self,
        journal: Journal,
        events: control.Events,
        service: SyncService,
        peers: Peers,
        *,
        vault: Vault,
        identity: Identity,
        data_dir: Path,
        config: Config,
        chain: ChainService,
        admit: Callable[[sync.SyncResult], None],
    ) -> None:
        self.journal = journal
        self.events = events
        self.service = service
        self.peers = peers
        self.vault = vault
        self.identity = identity
        self.data_dir = data_dir
        self.config = config
        self.chain = chain
        self.admit = admit  # a peer that finished a sync with us is a member (see Node._admit)
        self._wakes = {lane: trio.Event() for lane in sorted(set(LANES.values()))}
        self._ended: dict[str, trio.Event] = {}  # job id -> set when the job stops running
        self._running: dict[str, trio.CancelScope] = {}  # job id -> the scope that cancels it
        self._cancelled: set[str] = set()  # jobs cancelled by a client (not by a stop of the node)
        # parameters a job needs that the journal (plaintext on disk) must not hold: a vote's option and payer
        self._private: dict[str, dict[str, Any]] = {}
        self.extra_work: dict[str, Work] = {}  # the work of kinds another part of the node runs (federation)

    @property
    def lanes(self) -> list[str]:
        return list(self._wakes)

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._running)

    # --- queueing and cancelling ----------------------------------------------------------------------------

    def add(self, kind: str, params: dict[str, Any]) -> tuple[Job, trio.Event]:
        """Put a job in the queue, run at its lane's next look (`poke` makes that now); the event is set once the job
        stops running."""
        job = self.journal.add(kind, params)
        return job, self._ended.setdefault(job.id, trio.Event())

    async def queue(
        self, kind: str, params: dict[str, Any], wait: bool, private: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Queue a job; `private` parameters are kept in memory only (a restart loses them, and the job fails)."""
        job, ended = self.add(kind, params)
        if private:
            self._private[job.id] = private
        self.events.publish({"type": "job", "id": job.id, "state": "queued", "kind": kind, "params": params})
        self.poke()
        if wait:
            await ended.wait()
        return self.journal.get(job.id).as_dict()

    def queue_sync(self, name: str, address: str) -> None:
        """An announcement says a member has something else: sync with it (unless one is queued already)."""
        for job in self.journal.queued():
            if job.params == {"datanet": name, "peer": address}:
                return
        job = self.journal.add("sync", {"datanet": name, "peer": address})
        self._ended[job.id] = trio.Event()
        self.events.publish({"type": "job", "id": job.id, "state": "queued", "params": job.params, "cause": "gossip"})
        self.poke()

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job at once, or a running one at its next safe point (a sync between frames, proving
        between batches, training at its next step); what it committed stays."""
        job = self.journal.get(job_id)
        if job.state in ("done", "failed", "cancelled"):
            raise JobEnded(f"Job {job.id} ({job.kind}) already ended ({job.state}); there is nothing to cancel.")
        self._cancelled.add(job.id)
        scope = self._running.get(job.id)
        if scope is not None:
            scope.cancel()
            await self._ended.setdefault(job.id, trio.Event()).wait()
        elif self.journal.get(job.id).state == "queued":
            self.journal.set_state(job.id, "cancelled")
            self.events.publish({"type": "job", "id": job.id, "state": "cancelled", "kind": job.kind})
            self._ended.pop(job.id, trio.Event()).set()  # a client waiting on it (`wait`) gets its answer
        return self.journal.get(job.id).as_dict()

    def poke(self) -> None:
        for event in self._wakes.values():
            event.set()

    # --- running --------------------------------------------------------------------------------------------

    async def run_lane(self, lane: str) -> None:
        """Run the queued jobs of one lane, oldest first, one at a time."""
        while True:
            for job in self.journal.queued():
                if LANES.get(job.kind) == lane and job.id not in self._cancelled:
                    await self._run_job(job.id, job.kind, job.params)
            self._wakes[lane] = trio.Event()
            with trio.move_on_after(1.0):
                await self._wakes[lane].wait()

    async def _run_job(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        try:
            with trio.CancelScope() as scope:
                self._running[job_id] = scope
                if kind == "sync":
                    await self._sync_job(job_id, params)
                else:
                    await self._local_job(job_id, kind, params)
        finally:
            self._running.pop(job_id, None)
            self._private.pop(job_id, None)
            self._ended.pop(job_id, trio.Event()).set()

    def _interrupted(self, job_id: str, kind: str, note: str | None = None) -> None:
        """A running job stopped before its end: cancelled by a client (`note` says where it stopped, if the work
        said), or back in the queue (the node stops)."""
        if self.journal.get(job_id).state != "running":
            return
        if job_id in self._cancelled:
            self.journal.set_state(job_id, "cancelled", error=note)
            self.events.publish({"type": "job", "id": job_id, "state": "cancelled", "kind": kind, "note": note})
        elif kind in RESUMABLE:
            self.journal.set_state(job_id, "queued")
        else:  # an import: its client has gone, and its files may have changed by the next start
            self.journal.set_state(job_id, "failed", error="interrupted by the node's stop; start it again")
            self.events.publish({"type": "job", "id": job_id, "state": "failed", "kind": kind})

    def _failed(self, job_id: str, kind: str, exc: Exception) -> str:
        failure = failures.describe(exc, log="the node's log")
        message = failure.message
        if failure.expected:  # an unexpected one was logged with its traceback by describe
            logger.warning("%s job %s failed: %s (exit %d)", kind, job_id, failures.causes(exc), failure.exit_code)
        self.journal.set_progress(job_id, {"exit_code": failure.exit_code})  # a client ends as the command would
        self.journal.set_state(job_id, "failed", error=message)
        self.events.publish(
            {
                "type": "job",
                "id": job_id,
                "state": "failed",
                "kind": kind,
                "error": message,
                "exit_code": failure.exit_code,
            }
        )
        return message

    async def _sync_job(self, job_id: str, params: dict[str, Any]) -> None:
        self.journal.set_state(job_id, "running")
        self.events.publish({"type": "job", "id": job_id, "state": "running", "kind": "sync", "params": params})
        name, address = params["datanet"], params["peer"]
        peer = address
        done = False
        try:
            try:
                peer = str(peer_info(address).peer_id)  # checked when queued; a bad one fails this job only
                self.peers.note(peer, address)
                result = await self.service.sync_with(address, name)
            except trio.TooSlowError as exc:
                raise P2PError(f"Peer {peer} did not answer in time.") from exc
            except Exception as exc:  # py-libp2p's dial errors (SwarmException and friends) share no base class
                if type(exc).__module__.startswith("libp2p"):
                    raise P2PError(f"Cannot reach the peer at {address} ({type(exc).__name__}).") from exc
                raise
            done = True
        except Exception as exc:  # a failed job is reported in the journal, whatever failed
            message = self._failed(job_id, "sync", exc)
            self.peers.note(peer, address, error=message)
            return
        finally:
            if not done:
                self._interrupted(job_id, "sync")
        self.peers.note(peer, address, sync_done=True)
        self.admit(result)
        summary = {
            "received": result.received,
            "sent": result.sent,
            "bytes_received": result.bytes_received,
            "bytes_sent": result.bytes_sent,
            "seconds": round(result.seconds, 3),
        }
        self.journal.set_progress(job_id, summary)
        self.journal.set_state(job_id, "done")
        if result.received:
            self.events.publish({"type": "records.received", "datanet": name, "peer": peer, "count": result.received})
        self.events.publish({"type": "job", "id": job_id, "state": "done", "kind": "sync", **summary})

    async def _local_job(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        """Proving or training: blocking work in a worker thread (the heavy part in child processes), told to
        stop at its next batch or checkpoint when the job is cancelled or the node stops."""
        self.journal.set_state(job_id, "running")
        self.events.publish({"type": "job", "id": job_id, "state": "running", "kind": kind, "params": params})
        stop = threading.Event()
        token = trio.lowlevel.current_trio_token()

        saved = [0.0]  # when the journal last got this job's progress
        began = time.monotonic()

        def progress(update: dict[str, Any]) -> None:  # from the worker thread
            update = {**update, **_pace(update, time.monotonic() - began)}

            def publish() -> None:
                # Every update is an event; the journal (an fsync each) gets one a second, which is all a
                # restart needs to show (the job's own checkpoints are what it resumes from).
                if time.monotonic() - saved[0] >= PROGRESS_SAVE_EVERY:
                    self.journal.set_progress(job_id, update)
                    saved[0] = time.monotonic()
                self.events.publish({"type": f"{kind}.progress", "id": job_id, **update})

            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(publish)

        work = self._work[kind]
        summary: dict[str, Any] | None = None
        interrupted = True
        failure: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_set_on_cancel, stop)
                try:  # caught in here: out of the nursery it would come wrapped in an ExceptionGroup
                    given = {**params, **self._private.get(job_id, {})}
                    summary = await trio.to_thread.run_sync(work, given, stop, progress)
                except Exception as exc:
                    failure = exc
                interrupted = stop.is_set()  # read before cancelling the watcher (which sets it)
                nursery.cancel_scope.cancel()
        finally:  # no await in here: it runs whole even when a cancel arrived as the work returned
            if failure is not None and not interrupted:
                self._failed(job_id, kind, failure)
            elif summary is not None and not interrupted:
                self._done(job_id, kind, params, summary)
            else:  # a failure while stopping is how the work said where it stopped (training: the step)
                note = failures.describe(failure).message if failure is not None else None
                self._interrupted(job_id, kind, note)

    def _done(self, job_id: str, kind: str, params: dict[str, Any], summary: dict[str, Any]) -> None:
        # A vote's option, transaction and sender stay out of the journal: they would tie this machine to the vote.
        self.journal.set_progress(job_id, {"poll": summary["poll"]} if kind == "vote" else summary)
        self.journal.set_state(job_id, "done")
        if kind == "import":
            added = sum(int(s["added"]) for s in summary["imported"])
            self.events.publish({"type": "records.changed", "datanet": params["datanet"], "count": added})
        if kind == "submit":
            for sent in summary["submitted"]:
                if sent["tx"]:
                    self.events.publish(
                        {
                            "type": "chain.tx",
                            "method": "submitBatch",
                            "datanet": params["datanet"],
                            "tx": sent["tx"],
                            "gas": sent["gas"],
                        }
                    )
        if kind == "vote" and summary.get("tx"):
            self.events.publish({"type": "poll.changed", "id": params["poll"], "action": "vote", "tx": summary["tx"]})
            self.events.publish(
                {"type": "chain.tx", "method": "poll.vote", "datanet": None, "tx": summary["tx"], "gas": summary["gas"]}
            )
        self.events.publish({"type": "job", "id": job_id, "state": "done", "kind": kind, **summary})

    # --- the work of local jobs (in a worker thread) --------------------------------------------------------

    @property
    def _work(self) -> dict[str, Work]:
        return {
            "import": self._import_work,
            "prove": self._prove_work,
            "train": self._train_work,
            "submit": self._submit_work,
            "vote": self._vote_work,
            **self.extra_work,
        }

    def _vote_work(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        if "option" not in params:
            raise ClientError(
                "This vote was queued before the node restarted, and its option is kept in memory only; vote again."
            )
        summary = GovernanceService(self.chain).poll_vote(
            int(params["poll"]),
            str(params["option"]),
            payer_key_file=params.get("payer_key_file"),
            progress=progress,
            stop=stop,
        )
        return None if stop.is_set() or summary.get("stopped") else summary

    def _import_work(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        current = [""]

        def on_file(path: Path) -> None:
            current[0] = path.name

        summary = records_app.import_files(
            self.vault,
            params["datanet"],
            [Path(p) for p in params["paths"]],
            fmt=params.get("format"),
            skip_bad=bool(params.get("skip_bad")),
            progress=lambda done, total: progress({"file": current[0], "done": done, "total": total}),
            on_file=on_file,
            stop=stop,
        )
        return None if stop.is_set() else summary

    def _cpu(self, asked: Any) -> int:
        """Proving workers or training threads: what the job asked for, at most `[limits] cpu_threads`."""
        cap = self.config.cpu_threads
        return int(asked) if cap is None else max(1, min(int(asked), cap))

    def _prove_work(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        summary = contribution.prove(
            self.vault,
            self.identity,
            self.data_dir,
            params["datanet"],
            limit=params.get("limit"),
            datanet_id=params.get("datanet_id"),
            workers=self._cpu(params.get("workers", 1)),
            progress=progress,
            stop=stop,
            isolate=True,
        )
        return None if stop.is_set() else summary

    def _submit_work(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        summary = self.chain.submit(
            params["datanet"],
            stake=params.get("stake"),
            workers=self._cpu(params.get("workers", 1)),
            limit=params.get("limit"),
            progress=progress,
            stop=stop,
        )
        return None if stop.is_set() or summary.get("stopped") else summary

    def _train_work(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        settings = {k: params[k] for k in training_app.SETTINGS if k in params}
        if "threads" in settings:
            settings["threads"] = self._cpu(settings["threads"])
        result = training_app.train(
            self.config,
            self.vault,
            params["datanet"],
            settings,
            eval_path=_path(params.get("eval")),
            fresh=bool(params.get("fresh")),
            progress=progress,
            stop=stop,
        )
        return {k: result[k] for k in ("adapter_id", "reused", "training_job")}


# (done, total) in each kind's progress: import (bytes of the file), prove (batches), train (steps)
_DONE_TOTAL = (("done", "total"), ("batches_done", "batches"), ("step", "total_steps"))


def _pace(update: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """`rate` (units a second since the job started) and `eta_s`, for a progress update that counts done and
    total; a kind's own figures (training's samples/s and ETA) are kept beside them."""
    for done_key, total_key in _DONE_TOTAL:
        done, total = update.get(done_key), update.get(total_key)
        if isinstance(done, int | float) and isinstance(total, int | float) and elapsed > 0:
            rate = done / elapsed
            return {
                "rate": round(rate, 3),
                "eta_s": update.get("eta_s", round((total - done) / rate, 1) if rate else None),
            }
    return {}


async def _set_on_cancel(stop: threading.Event) -> None:
    try:
        await trio.sleep_forever()
    finally:
        stop.set()


def _path(value: Any) -> Path | None:
    return None if value is None else Path(str(value))
