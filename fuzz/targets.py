"""Every parser of outside bytes, as a fuzz target: `target(data)` feeds the bytes to the parser and accepts only
the outcomes the parser documents (a value, or its one-sentence error class). Anything else that escapes (a
KeyError, a RecursionError, a UnicodeDecodeError, a hang) is a crash: the fuzzer stops there and keeps the input.

The targets are shared by `fuzz/run.py` (atheris, coverage-guided) and the tests (which replay the kept crashes
in fuzz/regressions/ and the seeds). Each target's seeds are valid inputs, so the fuzzer starts from structure.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from client import config as config_mod
from client.errors import ClientError
from client.importers import read_rows
from client.p2p import claims, reconcile, sync, transfer
from client.p2p.errors import P2PError
from client.p2p.frames import Counters, FrameStream, Limits
from client.records import make_record
from client.training import adapters
from client.training.errors import TrainingError
from prover import snarkjs_format
from prover.errors import ProverError
from storage.errors import StorageError
from storage.key_file import Argon2Params, KeyFile

Target = Callable[[bytes], None]


@dataclass(frozen=True)
class Fuzzed:
    name: str
    run: Target
    seeds: tuple[bytes, ...]
    doc: str


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="datanet-fuzz-") as folder:
        yield Path(folder)


# --- the sync wire format (both directions: every frame a peer can send) ------------------------------------------


def _reconcile(data: bytes) -> None:
    with contextlib.suppress(P2PError):
        reconcile.decode(data)


def _transfer(data: bytes) -> None:
    with contextlib.suppress(P2PError):
        transfer.decode_want(data)
    with contextlib.suppress(P2PError):
        transfer.decode_records(data)


def _claims(data: bytes) -> None:
    with contextlib.suppress(P2PError):
        claims.decode_want(data)
    with contextlib.suppress(P2PError):
        claims.decode_batches(data)


def _hello(data: bytes) -> None:
    with contextlib.suppress(P2PError):
        sync.parse_hello(data)


class _Bytes:
    """A stream that yields the fuzzed bytes, then ends."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int) -> bytes:
        chunk, self._data = self._data[:n], self._data[n:]
        return chunk

    async def write(self, data: bytes) -> None:
        return None


def _frames(data: bytes) -> None:
    async def read_all() -> None:
        frames = FrameStream(_Bytes(data), Counters(), Limits(max_buffered=1 << 20))
        with contextlib.suppress(P2PError):
            for _ in range(64):
                await frames.receive()

    trio.run(read_all)


def _announcement(data: bytes) -> None:
    from client.node.announce import _parse

    _parse(data)  # a gossip message: a value or None, never an exception


# --- the control API's requests -----------------------------------------------------------------------------------


def _control(data: bytes) -> None:
    from client.node import api, control

    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {"params": params}

    methods: dict[str, control.Handler] = {name: handler for name in api.METHODS}

    async def answer() -> None:
        reply, _ = await control.answer(data, methods)
        json.dumps(reply)  # whatever it answers can be sent

    trio.run(answer)


# --- files a user or a peer hands over ----------------------------------------------------------------------------


def _import(fmt: str) -> Target:
    def run(data: bytes) -> None:
        with _scratch() as folder:
            path = folder / f"records.{fmt}"
            path.write_bytes(data)
            with contextlib.suppress(ClientError):
                read_rows(path, fmt)  # type: ignore[arg-type]

    return run


def _config(data: bytes) -> None:
    with _scratch() as folder:
        (folder / "config.toml").write_bytes(data)
        with contextlib.suppress(ClientError):
            config_mod.load({"DATANET_CONFIG_DIR": str(folder)}, data_dir=str(folder / "data"))


def _keys_json(data: bytes) -> None:
    with _scratch() as folder:
        (folder / "keys.json").write_bytes(data)
        with contextlib.suppress(StorageError):
            kf = KeyFile.load(folder)
            box = kf._master.get("passphrase")
            if isinstance(box, dict):
                Argon2Params.read(box, "keys.json")


def _identity_backup(data: bytes) -> None:
    from client.errors import IdentityError
    from client.identity import parse_backup

    with contextlib.suppress(IdentityError, StorageError):
        parse_backup(data)


def _adapter_manifest(data: bytes) -> None:
    """The same bytes as a plaintext manifest (an older store's, or an export's) and as a sealed one."""
    with _scratch() as folder:
        for name in (adapters.MANIFEST, adapters.SEALED_MANIFEST):
            adapter = folder / adapters.ADAPTERS_DIR / f"0123456789abcdef-{name}"
            adapter.mkdir(parents=True)
            (adapter / name).write_bytes(data)
        with contextlib.suppress(TrainingError):
            adapters.list_adapters(folder, bytes(32))


def _peft_config(data: bytes) -> None:
    with _scratch() as folder:
        (folder / "adapter_config.json").write_bytes(data)
        with contextlib.suppress(TrainingError):
            adapters.read_peft_config(folder)


def _text_file(data: bytes) -> None:
    with _scratch() as folder:
        (folder / "note.txt").write_bytes(data)
        with contextlib.suppress(ClientError):
            read_rows(folder / "note.txt", "text")


def _proof_json(data: bytes) -> None:
    with contextlib.suppress(ProverError):
        snarkjs_format.public_from_json(data.decode("utf-8", "replace"))
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return  # not JSON at all: what reads proof.json decides (the parser fuzzed is the snarkjs form below)
    with contextlib.suppress(ProverError):
        snarkjs_format.from_snarkjs(doc)


def _backup_seed() -> bytes:
    from client.identity import Identity, export_backup

    return export_backup(Identity.generate(), "fuzzing seed", Argon2Params(1, 8, 1))


def _record_seeds() -> tuple[bytes, ...]:
    records = [make_record({"text": f"note {i}", "label": "a"}) for i in range(3)]
    return (
        reconcile.encode([reconcile.Range(None, reconcile.IDLIST, ids=tuple(sorted(r.record_id for r in records)))]),
        transfer.encode_records([(r.record_id, r.body) for r in records]),
        transfer.encode_want([r.record_id for r in records]),
    )


CONFIG_SEED = (
    b'[node]\nlisten = ["/ip4/0.0.0.0/tcp/4001"]\nrelays = []\n[limits]\ncpu_threads = 2\n[log]\nformat = "json"\n'
)
PEFT_SEED = b'{"r": 8, "lora_alpha": 16, "target_modules": ["query", "value"], "base_model_name_or_path": "m"}'
PROOF_SEED = {"pi_a": ["1", "2", "1"], "pi_b": [["1", "2"], ["3", "4"], ["1", "0"]], "pi_c": ["5", "6", "1"]}

TARGETS: dict[str, Fuzzed] = {
    f.name: f
    for f in (
        Fuzzed("reconcile", _reconcile, _record_seeds()[:1], "a RECONCILE frame's ranges"),
        Fuzzed("transfer", _transfer, _record_seeds()[1:], "a TRANSFER frame: WANT and RECORDS"),
        Fuzzed("claims", _claims, (claims.encode_want([b"\x01" * 32]),), "carried batch claims: WANT and BATCHES"),
        Fuzzed("hello", _hello, (sync.hello("ward"), sync.hello("ward", b"\x02" * 85)), "a session's HELLO"),
        Fuzzed("frames", _frames, (b"\x00\x00\x00\x02\x01\x00" * 2,), "length-prefixed frames off a stream"),
        Fuzzed("announcement", _announcement, (b'{"v":1,"records":3,"fp":"' + b"a" * 32 + b'"}',), "a gossip message"),
        Fuzzed(
            "control",
            _control,
            (b'{"jsonrpc":"2.0","id":1,"method":"records.list","params":{"datanet":"w","limit":5}}',),
            "a control API request line",
        ),
        Fuzzed("jsonl", _import("jsonl"), (b'{"text":"a","label":"x"}\n{"text":"b"}\n',), "a JSONL import"),
        Fuzzed("csv", _import("csv"), (b'text,label\n"a, b",x\nc,y\n',), "a CSV import"),
        Fuzzed(
            "config",
            _config,
            (b'[node]\nlisten = ["/ip4/0.0.0.0/tcp/4001"]\n[limits]\ncpu_threads = 2\n',),
            "config.toml",
        ),
        Fuzzed(
            "keys_json",
            _keys_json,
            (
                json.dumps(
                    {
                        "format": "datanet-keys/1",
                        "vault_id": "ab",
                        "master": {"passphrase": {"time_cost": 1, "memory_kib": 8, "parallelism": 1}},
                        "secrets": {},
                    }
                ).encode(),
            ),
            "keys.json",
        ),
        Fuzzed("identity_backup", _identity_backup, (_backup_seed(),), "an identity backup"),
        Fuzzed("peft_config", _peft_config, (PEFT_SEED,), "adapter_config.json (peft)"),
        Fuzzed("adapter_manifest", _adapter_manifest, (b'{"created_at":"2026-12-01","base":"tiny"}',), "manifest.json"),
        Fuzzed(
            "proof_json",
            _proof_json,
            (
                json.dumps(
                    {"pi_a": ["1", "2", "1"], "pi_b": [["1", "2"], ["3", "4"], ["1", "0"]], "pi_c": ["5", "6", "1"]}
                ).encode(),
            ),
            "proof.json and public.json",
        ),
    )
}
