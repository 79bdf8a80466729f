"""Fetching records after reconciliation: everything arrives verified, in bounded frames; bad peers are cut off."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.p2p.errors import ProtocolViolation
from client.p2p.transfer import (
    CommitGroups,
    Fetcher,
    Lookup,
    decode_records,
    decode_want,
    encode_records,
    encode_want,
    serve,
)
from client.records import make_record


def _store(texts: list[str]) -> dict[bytes, bytes]:
    records = [make_record({"text": t}) for t in texts]
    return {r.record_id: r.body for r in records}


def _lookup(store: dict[bytes, bytes]) -> Lookup:
    return lambda ids: [(i, store[i]) for i in ids if i in store]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.text(max_size=300), unique=True, max_size=120),
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=600, max_value=20_000),
)
def test_every_needed_record_arrives_verified_in_bounded_frames(texts: list[str], chunk: int, frame: int) -> None:
    store = _store(texts)
    fetcher = Fetcher(store, chunk=chunk, max_frame=frame)
    received: dict[bytes, bytes] = {}
    rounds = 0
    while (request := fetcher.next_request()) is not None:
        response = serve(request, _lookup(store), max_frame=frame, max_ids=chunk)
        assert len(response) <= frame or len(decode_records(response, max_frame=1 << 30)) == 1
        for record_id, body in fetcher.receive(response):
            received[record_id] = body
        rounds += 1
        assert rounds <= 2 * len(store) + 2
    assert received == store
    progress = fetcher.progress
    assert (progress.records_done, progress.records_left) == (len(store), 0)
    assert progress.bytes_done == sum(len(b) for b in store.values())


def test_progress_counts_down_and_a_lost_frame_is_asked_again() -> None:
    store = _store([f"record {i}" for i in range(10)])
    fetcher = Fetcher(store, chunk=4)
    first = fetcher.next_request()
    assert first is not None and len(decode_want(first)) == 4
    assert fetcher.next_request() == first  # no answer yet (a lost frame, a new stream): the same ids again
    fetcher.receive(serve(first, _lookup(store)))
    assert (fetcher.progress.records_done, fetcher.progress.records_left) == (4, 6)


def test_a_record_whose_bytes_do_not_match_its_id_is_refused() -> None:
    store = _store(["genuine"])
    (record_id,) = store
    fetcher = Fetcher(store)
    assert fetcher.next_request() is not None
    forged = make_record({"text": "forged"}).body
    with pytest.raises(ProtocolViolation, match="do not match"):
        fetcher.receive(encode_records([(record_id, forged)]))
    assert fetcher.progress.records_done == 0


def test_unsolicited_non_canonical_and_empty_answers_are_refused() -> None:
    store = _store(["a", "b"])
    wanted, other = list(store)
    fetcher = Fetcher([wanted])
    assert fetcher.next_request() is not None
    with pytest.raises(ProtocolViolation, match="not asked for"):
        fetcher.receive(encode_records([(other, store[other])]))
    with pytest.raises(ProtocolViolation, match="no records at all"):
        fetcher.receive(encode_records([]))
    spaced = b'{"text": "a"}'
    fetcher2 = Fetcher([hashlib.sha256(spaced).digest()])
    assert fetcher2.next_request() is not None
    with pytest.raises(ProtocolViolation, match="not a valid record"):
        fetcher2.receive(encode_records([(hashlib.sha256(spaced).digest(), spaced)]))


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (b"\x02\x02\x00", "version 2"),
        (b"\x01\x01\x00", "kind 1 where 2"),
        (b"\x01\x02\x01" + b"\x00" * 32 + b"\xff\xff\xff\x7f", "over the 1048576 limit"),
        (b"\x01\x02\x01" + b"\x00" * 10, "ends in the middle"),
        (b"\x01\x02\x00junk", "trailing bytes"),
    ],
)
def test_malformed_frames_are_refused(frame: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        decode_records(frame)


def test_oversized_frames_and_greedy_requests_are_refused() -> None:
    with pytest.raises(ProtocolViolation, match="over the 10 limit"):
        decode_records(b"\x01\x02\x00" + b"\x00" * 20, max_frame=10)
    with pytest.raises(ProtocolViolation, match="asked for 600 records"):
        decode_want(encode_want([bytes(32)] * 600), max_ids=512)


@given(
    st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.binary(max_size=300)), max_size=20),
    st.integers(min_value=0),
)
def test_records_frames_round_trip_and_any_cut_or_flipped_byte_is_a_violation_or_a_frame(
    records: list[tuple[bytes, bytes]], cut: int
) -> None:
    frame = encode_records(records)
    assert decode_records(frame) == records
    position = cut % len(frame)
    with pytest.raises(ProtocolViolation):
        decode_records(frame[:position] if position > 2 else frame + b"\x00")
    flipped = bytearray(frame)
    flipped[position] ^= 0xFF
    with contextlib.suppress(ProtocolViolation):  # refused with a reason, or a frame: never another exception
        decode_records(bytes(flipped))


def test_verified_records_are_committed_in_groups_by_size_and_by_age() -> None:
    stored: list[list[bytes]] = []
    now = [0.0]
    groups = CommitGroups(
        lambda records: stored.append([i for i, _ in records]), max_bytes=100, max_seconds=1.0, clock=lambda: now[0]
    )
    a, b, c, d = ((bytes([n]) * 32, bytes(40)) for n in range(4))
    groups.add([a, b])  # 80 bytes, under both limits
    assert stored == []
    groups.add([c])  # 120 bytes: one transaction of all three
    assert stored == [[a[0], b[0], c[0]]]
    groups.add([d])
    now[0] = 1.5
    groups.add([])  # nothing new: no commit
    assert len(stored) == 1
    groups.add([a])  # the oldest waited 1.5 s: committed with it
    assert stored[-1] == [d[0], a[0]]
    groups.add([b])
    groups.flush()
    groups.flush()  # nothing left: no empty transaction
    assert stored[-1] == [b[0]] and len(stored) == 3


def test_the_same_record_twice_in_one_frame_is_refused_and_nothing_counts() -> None:
    store = _store(["once", "other"])
    record_id, other = list(store)
    fetcher = Fetcher(store)
    assert fetcher.next_request() is not None
    twice = encode_records([(record_id, store[record_id]), (record_id, store[record_id])])
    with pytest.raises(ProtocolViolation, match="not asked for"):
        fetcher.receive(twice)
    assert fetcher.progress.records_done == 0
    assert fetcher.receive(encode_records([(record_id, store[record_id]), (other, store[other])])) != []


def test_a_want_always_fits_the_frame_limit_it_is_read_with() -> None:
    store = _store([f"r{i}" for i in range(19)])
    fetcher = Fetcher(store, chunk=19, max_frame=600)  # 19 ids would make a 611-byte WANT (found by Hypothesis)
    request = fetcher.next_request()
    assert request is not None and len(request) <= 600
    assert len(decode_want(request, max_frame=600, max_ids=19)) == 18
