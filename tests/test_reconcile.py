"""Set reconciliation: any two sets converge, the bytes exchanged follow the difference, hostile input is refused."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.p2p.errors import ProtocolViolation
from client.p2p.reconcile import (
    FINGERPRINT,
    IDLIST,
    MAX_ROUNDS,
    Range,
    Reconciler,
    decode,
    encode,
    fingerprint,
)


def _ids(numbers: set[int]) -> list[bytes]:
    return [hashlib.sha256(n.to_bytes(8, "big")).digest() for n in numbers]


def _run(a: list[bytes], b: list[bytes], **options: int) -> tuple[Reconciler, Reconciler, int, int]:
    """Run an exchange to the end; returns both sides, the bytes exchanged and the number of messages."""
    left, right = Reconciler(a, **options), Reconciler(b, **options)
    first = left.initiate()
    sent, messages = len(first), 1
    message: bytes | None = first
    sides = [right, left]
    turn = 0
    while message is not None:
        message = sides[turn % 2].receive(message)
        turn += 1
        if message is not None:
            sent += len(message)
            messages += 1
        assert messages < 200
    return left, right, sent, messages


sets = st.sets(st.integers(min_value=0, max_value=5000), max_size=400)


@settings(max_examples=60, deadline=None)
@given(sets, sets)
def test_any_two_sets_converge_to_exactly_the_difference(a: set[int], b: set[int]) -> None:
    left, right, _, _ = _run(_ids(a), _ids(b), branch=4, idlist_threshold=3)
    assert left.need == set(_ids(b - a))
    assert right.need == set(_ids(a - b))
    assert left.done and right.done


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=0, max_value=3000),
    st.sets(st.integers(min_value=3000, max_value=9999), max_size=40),
    st.data(),
)
def test_bytes_exchanged_are_bounded_by_the_difference(shared: int, extra: set[int], data: st.DataObject) -> None:
    common = set(range(shared))
    removed = data.draw(st.sets(st.sampled_from(sorted(common)), max_size=20)) if common else set()
    a, b = common, (common - removed) | extra
    difference = len(a ^ b)
    _, _, sent, _ = _run(_ids(a), _ids(b))
    n = max(len(a), len(b), 1)
    levels = max(1, math.ceil(math.log(n / 32, 16)) + 1) if n > 32 else 1
    # per differing id: a fingerprint split per level (16 ranges of about 55 bytes) and one id list (33 x 32)
    assert sent <= 64 + (difference + 1) * (levels * 16 * 56 + 33 * 33 + 64), (sent, difference, n)
    if difference == 0:
        assert sent < 64  # identical sets: one fingerprint and a DONE


def test_identical_large_sets_take_two_small_messages() -> None:
    ids = _ids(set(range(100_000)))
    left, right, sent, messages = _run(ids, list(ids))
    assert (messages, left.need, right.need) == (2, set(), set())
    assert sent < 64


def test_a_few_changes_in_a_large_set_cost_little() -> None:
    base = set(range(100_000))
    a, b = base - {5, 50_000}, base | {200_001, 200_002}
    left, right, sent, _ = _run(_ids(a), _ids(b))
    assert left.need == set(_ids({5, 50_000, 200_001, 200_002}))
    assert right.need == set()
    assert sent < 4_000  # under 1 KB a change, against 3.2 MB to send every id


def test_a_peer_with_nothing_gets_every_id_in_messages_under_the_cap() -> None:
    ids = _ids(set(range(20_000)))  # 640 KB of ids, against a 64 KB message cap
    left, right = Reconciler([], max_message=64 << 10), Reconciler(ids, max_message=64 << 10)
    message: bytes | None = left.initiate()
    sides, turn, largest = [right, left], 0, 0
    while message is not None:
        largest = max(largest, len(message))
        message = sides[turn % 2].receive(message)
        turn += 1
    assert left.need == set(ids) and right.need == set()
    assert largest <= 64 << 10


def test_wire_format_round_trip() -> None:
    ids = tuple(sorted(_ids({1, 2, 3})))
    ranges = [
        Range(ids[1], FINGERPRINT, count=7, fingerprint=fingerprint(list(ids))),
        Range(None, IDLIST, ids=ids[1:]),
    ]
    assert decode(encode(ranges)) == ranges
    assert decode(encode([])) == []


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"\x02\x00", "version 2"),
        (b"\x01\x01\x00\x09", "unknown range mode"),
        (b"\x01\x01\x00\x01\x05", "ends in the middle"),
        (b"\x01\x01\x20" + b"\x11" * 32 + b"\x00", "whole id space"),
        (b"\x01\x01\x21" + b"\x11" * 33 + b"\x00", "at most 32"),
        (b"\x01\x00extra", "trailing bytes"),
        (b"\x01\x02\x00\x00\x00\x00", "increasing order"),
        (b"\x01\x01\x00\x02\x02" + b"\x22" * 32 + b"\x11" * 32, "sorted and unique"),
        (b"\x01\x01\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", "over-long number"),
    ],
)
def test_malformed_messages_are_refused(message: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        decode(message)


def test_oversized_messages_and_id_lists_are_refused() -> None:
    with pytest.raises(ProtocolViolation, match="over the 100 limit"):
        decode(b"\x01" + b"\x00" * 200, max_message=100)
    many = encode([Range(None, IDLIST, ids=tuple(sorted(_ids(set(range(20))))))])
    with pytest.raises(ProtocolViolation, match="20 ids in one range, over the 10 limit"):
        decode(many, max_ids=10)


def test_ids_outside_their_range_and_endless_peers_are_refused() -> None:
    low, high = sorted(_ids({1, 2}))
    outside = encode([Range(low, IDLIST, ids=(high,)), Range(None, IDLIST, ids=())])
    with pytest.raises(ProtocolViolation, match="outside the range"):
        decode(outside)
    side = Reconciler(_ids(set(range(100))))
    bogus = encode([Range(None, FINGERPRINT, count=1, fingerprint=b"\x00" * 16)])
    for _ in range(MAX_ROUNDS):  # a peer that answers every split with a wrong fingerprint again
        side.receive(bogus)
    with pytest.raises(ProtocolViolation, match="did not settle"):
        side.receive(bogus)
    finished = Reconciler([])
    assert finished.receive(encode([])) is None
    with pytest.raises(ProtocolViolation, match="after the sync exchange ended"):
        finished.receive(encode([]))
