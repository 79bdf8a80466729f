"""Hypothesis strategies for the parsers of outside bytes that fuzz/ fuzzes blindly: structured values round-trip
exactly through their encoders and parsers, and structured-but-wrong inputs (a valid frame with one byte changed or
cut short, a JSON-RPC request of any shape) end in the parser's one documented error, never another exception."""

from __future__ import annotations

import json
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from client.node import api, control
from client.node.announce import _parse
from client.p2p import claims, sync
from client.p2p.errors import P2PError
from storage.provenance import BatchClaim

FIELD = st.integers(min_value=0, max_value=2**254)
PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=claims.MAX_TEXT)


@st.composite
def batch_claims(draw: st.DrawFn) -> BatchClaim:
    count = draw(st.integers(min_value=1, max_value=claims.MAX_RECORDS))
    return BatchClaim(
        root=draw(st.binary(min_size=32, max_size=32)),
        commitment=draw(FIELD),
        datanet_id=draw(FIELD),
        recipient=draw(FIELD),
        proof=draw(st.binary(min_size=claims.PROOF_BYTES, max_size=claims.PROOF_BYTES)),
        records=tuple((draw(st.binary(min_size=32, max_size=32)), draw(FIELD)) for _ in range(count)),
        chain=draw(st.none() | PRINTABLE.filter(bool)),
        tx_hash=draw(st.none() | PRINTABLE.filter(bool)),
    )


@given(st.lists(batch_claims(), max_size=4))
def test_batch_claims_round_trip(batch: list[BatchClaim]) -> None:
    assert claims.decode_batches(claims.encode_batches(batch)) == batch


@given(st.lists(batch_claims(), min_size=1, max_size=2), st.data())
def test_a_changed_or_cut_batches_frame_is_a_protocol_violation_or_a_batch(batch: list[BatchClaim], data: Any) -> None:
    frame = bytearray(claims.encode_batches(batch))
    if data.draw(st.booleans()):
        frame = frame[: data.draw(st.integers(min_value=0, max_value=len(frame) - 1))]
    else:
        at = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
        frame[at] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        decoded = claims.decode_batches(bytes(frame))
    except P2PError:
        return
    assert all(isinstance(c, BatchClaim) and 1 <= c.count <= claims.MAX_RECORDS for c in decoded)


@given(st.text(min_size=1, max_size=60).filter(lambda n: len(n.encode()) <= 200), st.booleans())
def test_hello_round_trips(name: str, with_credential: bool) -> None:
    credential = b"\x07" * 85 if with_credential else None
    assert sync.parse_hello(sync.hello(name, credential)) == (name, credential)


@given(st.binary(max_size=300))
def test_any_hello_payload_parses_or_is_a_protocol_violation(payload: bytes) -> None:
    try:
        name, credential = sync.parse_hello(payload)
    except P2PError:
        return
    assert name and (credential is None or len(credential) == 85)


@given(st.integers(min_value=0, max_value=10**12), st.binary(min_size=16, max_size=16))
def test_an_announcement_round_trips_and_its_corruptions_are_dropped(records: int, fp: bytes) -> None:
    message = json.dumps({"v": 1, "records": records, "fp": fp.hex()}, separators=(",", ":")).encode()
    assert _parse(message) == (records, fp.hex())
    assert _parse(message[:-1]) is None and _parse(message.replace(b'"v":1', b'"v":2')) is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(
    st.sampled_from([*api.METHODS, "nope", ""]),
    st.dictionaries(st.sampled_from(["datanet", "limit", "id", "peer", "paths", "wait", "x"]), JSON, max_size=4),
    JSON,
)
def test_any_request_shape_gets_a_json_rpc_answer(method: str, params: dict[str, Any], request_id: Any) -> None:
    """A request of any shape: a result or one JSON-RPC error, never an exception out of the server."""

    async def handler(checked: dict[str, Any]) -> dict[str, Any]:
        return {"params": checked}

    methods: dict[str, control.Handler] = {name: handler for name in api.METHODS}
    line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode()

    async def answer() -> dict[str, Any]:
        reply, _ = await control.answer(line, methods)
        return reply

    reply = trio.run(answer)
    assert ("result" in reply) != ("error" in reply)
    if "error" in reply:
        assert isinstance(reply["error"]["message"], str) and "\n" not in reply["error"]["message"]
