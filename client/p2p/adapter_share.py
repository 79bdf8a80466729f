"""`/datanet/adapters/1.0.0`: fetching an adapter a member chose to share.

    fetcher -> sharer   HELLO    {"adapter_id": hex, "credential": hex | null}
    sharer -> fetcher   WELCOME  {"manifest": {...}, "files": {file name: size, for both PEFT files}}
                     or REFUSED  one sentence
    sharer -> fetcher   TRANSFER one frame per chunk: file index (1 byte) + bytes, the files in order

The sharer answers only for an adapter it shares (`datanet adapters share ID`) and only to a member of the adapter's
Datanet (its vault's members, or proven on chain like sync); the audit log records the adapter leaving. The
fetcher checks that the files hash to the id it asked for (content addressing: a peer cannot send another adapter),
that the id is registered on chain for that Datanet and base model (client/app/chain.py), and only then stores it,
its manifest sealed under its own key with where it came from.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from client.p2p import admission
from client.p2p.errors import P2PError, ProtocolViolation
from client.p2p.frames import (
    HELLO,
    REFUSED,
    TRANSFER,
    WELCOME,
    Counters,
    FrameStream,
    Limits,
    Refused,
    close_stream,
    reset_stream,
)
from client.p2p.host import ADAPTER_PROTOCOL
from client.training import adapters

logger = logging.getLogger(__name__)

MAX_FILE = 64 << 20  # bytes of one adapter file (SmolLM2's LoRA is about 2 MB)
MAX_MANIFEST = 1 << 20
CHUNK = 256 << 10
DEADLINE = 30.0  # seconds for any one frame
_ID = re.compile(r"^[0-9a-f]{64}$")


class NotShared(P2PError):
    """The sharer refused: the adapter is not shared, or the fetcher is not a member of its Datanet."""


@dataclass(frozen=True, slots=True)
class Offer:
    manifest: dict[str, Any]
    folder: Path  # the adapter's folder in the sharer's store


Decide = Callable[[str, str, bytes | None], Awaitable[Offer]]  # (peer, adapter id, credential) -> the offer


def _json(payload: bytes, limit: int) -> dict[str, Any]:
    if len(payload) > limit:
        raise ProtocolViolation("The peer's adapter message is too large.")
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        raise ProtocolViolation("The peer's adapter message is not JSON.") from None
    if not isinstance(value, dict):
        raise ProtocolViolation("The peer's adapter message is not a JSON object.")
    return value


def parse_request(payload: bytes) -> tuple[str, bytes | None]:
    value = _json(payload, 4096)
    adapter_id = value.get("adapter_id")
    if not isinstance(adapter_id, str) or not _ID.match(adapter_id):
        raise ProtocolViolation("The peer asked for no valid adapter id.")
    credential = value.get("credential")
    if credential is None:
        return adapter_id, None
    if not isinstance(credential, str) or len(credential) != 2 * admission.CREDENTIAL_BYTES:
        raise ProtocolViolation("The peer's request carries a malformed credential.")
    try:
        return adapter_id, bytes.fromhex(credential)
    except ValueError:
        raise ProtocolViolation("The peer's request carries a malformed credential.") from None


def parse_offer(payload: bytes) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    value = _json(payload, MAX_MANIFEST)
    manifest, files = value.get("manifest"), value.get("files")
    if not isinstance(manifest, dict) or not isinstance(files, dict) or sorted(files) != sorted(adapters.PEFT_FILES):
        raise ProtocolViolation("The peer's offer is not an adapter (PEFT files and a manifest).")
    datanet, base = manifest.get("datanet"), manifest.get("base_model")
    if not (isinstance(datanet, dict) and isinstance(datanet.get("name"), str) and datanet["name"]) or not (
        isinstance(base, dict) and isinstance(base.get("weights_sha256"), str) and _ID.match(base["weights_sha256"])
    ):
        raise ProtocolViolation("The peer's offer has no manifest naming its Datanet and base model.")
    sizes = []
    for name in adapters.PEFT_FILES:
        size = files[name]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_FILE:
            raise ProtocolViolation(f"The peer's offer gives {name} an impossible size.")
        sizes.append((name, size))
    return manifest, sizes


async def serve(stream: Any, decide: Decide, on_sent: Callable[[str, str, str], None]) -> None:
    """The sharer's side of one stream; `on_sent(peer, adapter id, Datanet)` once the files have left."""
    peer = str(stream.muxed_conn.peer_id)  # authenticated by Noise
    frames = FrameStream(stream, Counters(), Limits(frame_deadline=DEADLINE))
    try:
        adapter_id, credential = parse_request(await frames.expect(HELLO))
        try:
            offer = await decide(peer, adapter_id, credential)
        except NotShared as exc:
            await frames.send(REFUSED, str(exc).encode()[:500])
            await close_stream(stream)
            return
        files = {name: (offer.folder / name).stat().st_size for name in adapters.PEFT_FILES}
        await frames.send(WELCOME, json.dumps({"manifest": offer.manifest, "files": files}).encode())
        for index, name in enumerate(adapters.PEFT_FILES):
            with (offer.folder / name).open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    await frames.send(TRANSFER, bytes([index]) + chunk)
        on_sent(peer, adapter_id, str(offer.manifest.get("datanet", {}).get("name", "")))
    except (ProtocolViolation, P2PError) as exc:
        logger.warning("adapter request of peer %s cut off: %s", peer, type(exc).__name__)
        await reset_stream(stream)
        return
    except Exception:  # a damaged store, a file gone: this stream only (out of a handler it takes the host down)
        logger.exception("adapter request of peer %s failed", peer)
        await reset_stream(stream)
        return
    await close_stream(stream)


async def fetch(host: Any, peer_id: Any, adapter_id: str, credential: bytes | None, staging: Path) -> dict[str, Any]:
    """Fetch an adapter into `staging` (a new folder); its manifest as the sharer sent it. The files are checked
    against `adapter_id` here; the caller checks the chain before storing them."""
    stream = await host.new_stream(peer_id, [ADAPTER_PROTOCOL])
    frames = FrameStream(stream, Counters(), Limits(frame_deadline=DEADLINE))
    await trio.Path(staging).mkdir(mode=0o700, parents=True)
    try:
        request = {"adapter_id": adapter_id, "credential": credential.hex() if credential else None}
        await frames.send(HELLO, json.dumps(request).encode())
        try:
            manifest, sizes = parse_offer(await frames.expect(WELCOME))
        except Refused as exc:
            raise NotShared(f"The peer refused: {str(exc).split(': ', 1)[-1]}") from None
        for index, (name, size) in enumerate(sizes):
            fd = (staging / name).open("wb")
            with fd:
                (staging / name).chmod(0o600)
                got = 0
                while got < size:
                    chunk = await frames.expect(TRANSFER)
                    if not chunk or chunk[0] != index or got + len(chunk) - 1 > size:
                        raise ProtocolViolation("The peer sent adapter bytes out of order or beyond their size.")
                    fd.write(chunk[1:])
                    got += len(chunk) - 1
        found, _ = await trio.to_thread.run_sync(adapters.content_id, staging)  # hashing off the event loop
        if found != adapter_id:
            raise ProtocolViolation(
                f"The peer sent an adapter whose files hash to {found[:12]}, not the {adapter_id[:12]} asked for."
            )
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        await close_stream(stream)
