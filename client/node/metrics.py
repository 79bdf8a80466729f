"""The node's Prometheus endpoint: opt-in (`[metrics] listen = "127.0.0.1:9464"` or `node run --metrics ADDR`),
on the loopback interface only, served by the kept `prometheus-client` from its own thread.

What it shows carries no name, label or record content (the endpoint has no authentication; on a shared host any
local user can read it): totals of records and Datanets, peers, sync records and bytes each way, jobs by kind
and outcome, batches proven and submitted, transactions sent, errors logged, gossip announcements dropped (not a
member, over the rate limit, oversized). Counters come from the node's
events (control.Events observer) and its served sync sessions; the gauges are read when scraped, from values the
node's loop refreshes (never a vault read on the endpoint's thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from client.p2p.progress import SyncResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the gauges show, refreshed by the node's loop."""

    datanets: int = 0
    records: int = 0
    peers: int = 0
    jobs_queued: int = 0
    jobs_running: int = 0


class _Collector(Collector):
    def __init__(self, read: Callable[[], Gauges], started: float) -> None:
        self._read = read
        self._started = started

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = self._read()
        yield GaugeMetricFamily("datanet_datanets", "Datanets (shards) held here", value=gauges.datanets)
        yield GaugeMetricFamily("datanet_records", "records held here, own and received", value=gauges.records)
        yield GaugeMetricFamily("datanet_peers_connected", "peers connected now", value=gauges.peers)
        jobs = GaugeMetricFamily("datanet_jobs", "jobs now, by state", labels=["state"])
        jobs.add_metric(["queued"], gauges.jobs_queued)
        jobs.add_metric(["running"], gauges.jobs_running)
        yield jobs
        yield GaugeMetricFamily(
            "datanet_uptime_seconds", "seconds since the node started", value=time.time() - self._started
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = Gauges()
        self._server: WSGIServer | None = None
        r = self.registry
        self.sync_records = Counter("datanet_sync_records", "records synced, by direction", ["direction"], registry=r)
        self.sync_bytes = Counter(
            "datanet_sync_bytes", "sync bytes on the wire, by direction", ["direction"], registry=r
        )
        self.sync_sessions = Counter("datanet_sync_sessions", "sync sessions finished, by side", ["side"], registry=r)
        self.jobs = Counter(
            "datanet_jobs_finished", "jobs finished, by kind and outcome", ["kind", "state"], registry=r
        )
        self.proofs = Counter("datanet_batches_proven", "contribution batches proven (Groth16)", registry=r)
        self.submitted = Counter("datanet_batches_submitted", "batches submitted to the chain, confirmed", registry=r)
        self.txs = Counter(
            "datanet_chain_transactions", "transactions sent and confirmed, by method", ["method"], registry=r
        )
        self.errors = Counter("datanet_errors", "errors logged by the node", registry=r)
        self.dropped = Counter(
            "datanet_announcements_dropped", "gossip announcements the validator dropped, by why", ["why"], registry=r
        )

    def start(self, host: str, port: int, started: float) -> None:
        self.registry.register(_Collector(lambda: self.gauges, started))
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        logger.info("metrics on http://%s:%d/metrics", host, port)

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- what feeds the counters -----------------------------------------------------------------------------

    def event(self, event: dict[str, Any]) -> None:
        """A node event (control.Events observer)."""
        kind = event.get("type")
        if kind == "chain.tx":
            self.txs.labels(str(event.get("method"))).inc()
        elif kind == "job" and event.get("state") in ("done", "failed", "cancelled"):
            job = str(event.get("kind"))
            self.jobs.labels(job, str(event["state"])).inc()
            if event["state"] != "done":
                return
            if job == "sync":
                self._synced("client", event)
            elif job == "prove":
                self.proofs.inc(len(event.get("batches") or []))
            elif job == "submit":
                self.submitted.inc(sum(1 for s in event.get("submitted") or [] if s.get("tx")))

    def served(self, result: SyncResult) -> None:
        """A session a peer started with this node."""
        self._synced("server", {"received": result.received, "sent": result.sent, **_bytes(result)})

    def _synced(self, side: str, summary: dict[str, Any]) -> None:
        self.sync_sessions.labels(side).inc()
        for direction in ("received", "sent"):
            self.sync_records.labels(direction).inc(int(summary.get(direction) or 0))
            self.sync_bytes.labels(direction).inc(int(summary.get(f"bytes_{direction}") or 0))


def _bytes(result: SyncResult) -> dict[str, int]:
    return {"bytes_received": result.bytes_received, "bytes_sent": result.bytes_sent}


class ErrorCounter(logging.Handler):
    """Counts the node's ERROR (and worse) log records for `datanet_errors_total`."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.ERROR)
        self._metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self._metrics.errors.inc()
