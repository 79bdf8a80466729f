"""A recorded node for the TUI's snapshot tests: fixed answers to the control calls the TUI makes (shaped from a real
node's answers, with fixed ids, times and figures) and a fixed series of events, so that every screen draws the
same on every run. tests/test_tui_snapshots.py checks these answers against the control API's declarations with
the same checks it runs on a real node's answers (the contract both must meet)."""

from __future__ import annotations

import asyncio
import copy
import fnmatch
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from client.node.async_client import AsyncControlClient
from client.node.control import RemoteError

PEER = "12D3KooWAJoMSbNKUJVFwXbGTxgAmKCwYsp1cGSNnF1afwRZRuL7"
OTHER = "12D3KooWQ7Jx3fZ1oVfPBdhSUh2R1Hx5cTpQjmW8PX3c2b9eNfYk"
ACCOUNT = "0x0C66Cccdd12D2AB660371082a11d9Ab6CdB9e949"
T0 = 1_796_131_776_000  # 2026-12-01 13:29:36 UTC, in ms: every recorded time is this or a fixed offset
ROOTS = ["2849d3c795039e1dbac2950f4cb67badcdca294e4c38493c8ed59bfd555e50ab", "1f" * 32]
TX = "0x54ade388b5eca11a4f6f743f1a9b3070c3f54bee6058909cac335444fb761dcb"
LABELS = ["billing_question", "appointment", "prescription_refill", "test_results"]

RECORDS: list[dict[str, Any]] = [
    {
        "id": f"{i:02x}" * 32,
        "source": f"ward.jsonl:{i + 1}",
        "imported_at": "2026-12-01 13:29:36",
        "size": 80 + i % 17,
        "origin": "own" if i < 32 else "peer",
        "received_from": None if i < 32 else OTHER,
    }
    for i in range(40)
]

ANSWERS: dict[str, Any] = {
    "status": {
        "api_version": 5,
        "peer_id": PEER,
        "addresses": ["/ip4/127.0.0.1/tcp/4001/p2p/" + PEER],
        "uptime_s": 93.4,
        "datanets": 1,
        "peers_connected": 1,
        "jobs": {"queued": 0, "running": 1, "failed": 0},
        "online": True,
        "chain": None,
    },
    "identity": {
        "peer_id": PEER,
        "evm_address": ACCOUNT,
        "identity_commitment": "10175417641873354060631738189416267897286780223272571653617368551882192393135",
    },
    "datanets": {
        "datanets": [
            {
                "name": "ward",
                "task": "intent-classification",
                "uuid": "1144b2b76a114537b8f674de8cf5c161",
                "created_at": "2026-12-01 13:29:36",
                "records": 40,
                "own": 32,
                "peer": 8,
                "bytes": 3429,
                "pending": 0,
                "batches": {"proven": 2, "submitted": 1},
                "members": [OTHER],
                "binding": {
                    "chain_id": 1147237473,
                    "registry": "0x16d71a8eb1952a50e5b0e4713ad72f3d9d2688a6",
                    "datanet_id": 1,
                },
            }
        ],
        "unreadable": [],
    },
    "jobs": [
        {
            "id": "7a1c0e5b9d2f4c11",
            "kind": "train",
            "params": {"datanet": "ward", "base": "tiny-classifier", "epochs": 3},
            "state": "running",
            "progress": {"step": 12, "total_steps": 30, "epoch": 2, "loss": 1.234, "samples_per_s": 61.2, "eta_s": 5.0},
            "error": None,
            "created_ms": T0 + 60_000,
            "updated_ms": T0 + 65_000,
        },
        {
            "id": "5c4d0679f80c4b68",
            "kind": "submit",
            "params": {"datanet": "ward", "workers": 2},
            "state": "done",
            "progress": {
                "datanet": "ward",
                "datanet_id": 1,
                "proved": 0,
                "submitted": [{"root": ROOTS[0], "count": 16, "tx": TX, "gas": 309_663}],
                "already_submitted": 0,
                "seconds": 0.52,
            },
            "error": None,
            "created_ms": T0 + 40_000,
            "updated_ms": T0 + 41_000,
        },
        {
            "id": "3b8e2d7f6a904c22",
            "kind": "sync",
            "params": {"datanet": "ward", "peer": "/ip4/10.0.0.5/tcp/4001/p2p/" + OTHER},
            "state": "done",
            "progress": {"received": 8, "sent": 32, "seconds": 0.412},
            "error": None,
            "created_ms": T0 + 30_000,
            "updated_ms": T0 + 31_000,
        },
        {
            "id": "1de6cf2175d8442f",
            "kind": "prove",
            "params": {"datanet": "ward", "workers": 2},
            "state": "done",
            "progress": {"datanet": "ward", "batches": [], "records": 32, "pending": 0, "seconds": 1.622, "workers": 2},
            "error": None,
            "created_ms": T0 + 10_000,
            "updated_ms": T0 + 12_000,
        },
    ],
    "batches": {
        "datanet": "ward",
        "batches": [
            {"root": ROOTS[0], "count": 16, "status": "submitted", "chain": "1147237473", "tx": TX},
            {"root": ROOTS[1], "count": 16, "status": "proved", "chain": None, "tx": None},
        ],
        "pending": 0,
    },
    "chain.status": {
        "chain": "devnet",
        "rpc": "the embedded devnet",
        "chain_id": 1147237473,
        "block": 23,
        "account": ACCOUNT,
        "balance_wei": 99_999_899_688_137_136_860,
        "contracts": {"registry": "0x16d71a8eB1952A50E5B0E4713ad72F3d9D2688A6"},
    },
    "peers": [
        {
            "peer_id": OTHER,
            "address": "/ip4/10.0.0.5/tcp/4001",
            "transport": "direct",
            "connected": True,
            "last_sync": (T0 + 31_000) / 1000,
            "last_error": None,
            "latency_ms": 0.8,
        }
    ],
    "adapters.list": {
        "adapters": [
            {
                "format": "datanet-adapter/1",
                "adapter_id": "9f3e" * 16,
                "files": {"adapter_config.json": "12" * 32, "adapter_model.safetensors": "34" * 32},
                "created_at": "2026-12-01T13:31:02Z",
                "task": "intent-classification",
                "labels": LABELS,
                "base_model": {
                    "name": "tiny-classifier",
                    "model_id": "datanet/tiny-classifier",
                    "weights_sha256": "ab" * 32,
                    "source": "built locally from seed 0",
                },
                "datanet": {"name": "ward", "uuid": "1144b2b76a114537b8f674de8cf5c161"},
                "trained_on": {"records": 32, "record_set_sha256": "cd" * 32, "batch_roots": ROOTS},
                "evaluation": {"source": None, "records": 8, "before": {"accuracy": 0.25}, "after": {"accuracy": 0.75}},
                "seed": 0,
                "threads": 1,
                "hyperparameters": {"epochs": 3, "batch_size": 16, "learning_rate": 0.001},
                "versions": {"torch": "2.13.0", "peft": "0.21.2"},
                "device": "cpu",
                "training": {"steps": 6, "train_loss": 0.91, "samples_per_s": 61.2, "seconds": 3.1},
                "dp": {"epsilon_target": 8.0, "epsilon_spent": 7.93, "delta": 1e-5},
            }
        ]
    },
    "log.tail": {
        "file": "/data/logs/datanet.log",
        "lines": [
            "2026-12-01 13:29:39,746 30955 INFO client.chain.session: contracts deployed on the devnet in 0.51s",
            "2026-12-01 13:30:06,102 30955 INFO client.p2p.sync: sync ward with 12D3KooWQ7Jx: 8 in, 32 out",
            "2026-12-01 13:30:41,554 30955 WARNING client.node.discovery: bootstrap peer unreachable (timeout)",
        ],
    },
}

EVENTS: list[dict[str, Any]] = [
    *(
        {
            "type": "train.progress",
            "id": "7a1c0e5b9d2f4c11",
            "step": step,
            "total_steps": 30,
            "epoch": 1 + step // 10,
            "loss": round(2.1 - 0.07 * step + 0.05 * (step % 3), 3),
            "samples_per_s": 61.2,
            "eta_s": 30.0 - step,
            "device": "cpu",
            "seq": step,
            "at": (T0 + 60_000 + step * 400) / 1000,
        }
        for step in range(1, 13)
    ),
    {
        "type": "sync.progress",
        "datanet": "ward",
        "peer": OTHER,
        "phase": "fetching",
        "records_done": 6_000,
        "records_left": 4_000,
        "bytes_done": 5_700_000,
        "bytes_left": 3_800_000,
        "rate": 2_400.0,
        "eta": 1.7,
        "seq": 13,
        "at": (T0 + 66_000) / 1000,
    },
    {"type": "chain.tx", "method": "submitBatch", "datanet": "ward", "tx": TX, "gas": 309_663, "seq": 14, "at": 0.0},
]


def _records_list(params: dict[str, Any]) -> dict[str, Any]:
    chosen = [r for r in RECORDS if fnmatch.fnmatch(r["source"], params.get("source") or "*")]
    offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 20)
    return {"datanet": "ward", "total": len(chosen), "records": chosen[offset : offset + limit]}


def _records_show(params: dict[str, Any]) -> dict[str, Any]:
    found = next((r for r in RECORDS if str(r["id"]).startswith(str(params["id"]))), None)
    if found is None:
        raise RemoteError("No record with that id in Datanet 'ward'.", 1)
    index = RECORDS.index(found)
    return {
        **found,
        "provenance": [
            {
                "contributor_commitment": "0x167f151107cecf5fae8675e9e2d63f2af0c7498d0121023be68f83559c8513af",
                "batch_root": ROOTS[index // 16 % 2],
                "position": index % 16,
                "count": 16,
                "salt": "0x19392d1fc26f638a2168f295df28c95d8ef8682390acf7ce32d61a4317f7fef5",
                "merkle_path": [f"0x{level:02x}" + "3c" * 31 for level in range(4)],
                "datanet_id": "1",
                "recipient": ACCOUNT.lower(),
                "own": found["origin"] == "own",
                "carried_by": found["received_from"],
                "chain": "1147237473" if index < 16 else None,
                "tx": TX if index < 16 else None,
            }
        ],
        "record": {"label": LABELS[index % 4], "text": f"Recorded message {index + 1} about a visit."},
    }


def _job(params: dict[str, Any]) -> dict[str, Any]:
    for job in ANSWERS["jobs"]:
        if job["id"] == params["id"]:
            return dict(job)
    raise RemoteError(f"There is no job {params['id']}.", 1)


COMPUTED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "records.list": _records_list,
    "records.show": _records_show,
    "job": _job,
}


class RecordedNode(AsyncControlClient):
    """Answers from ANSWERS (and COMPUTED), then the EVENTS once subscribed; a call that would change the node is
    refused in one sentence, as a node that cannot do it would."""

    def __init__(self) -> None:
        super().__init__(socket=Path("/nonexistent/recorded.sock"))
        self.calls: list[str] = []

    async def call(self, method: str, /, **params: Any) -> Any:
        self.calls.append(method)
        if method in COMPUTED:
            return COMPUTED[method](params)
        if method in ANSWERS:
            return copy.deepcopy(ANSWERS[method])
        raise RemoteError(f"The recorded node does not {method}.", 1)

    async def events(self, on_subscribed: Callable[[], None] | None = None) -> AsyncGenerator[dict[str, Any]]:
        if on_subscribed is not None:
            on_subscribed()
        for event in EVENTS:
            yield dict(event)
        await asyncio.Event().wait()  # nothing more, ever (the app cancels this when it exits)
