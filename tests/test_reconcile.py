"""Set reconciliation: any two sets converge, the bytes exchanged follow the difference, hostile input is refused."""

from __future__ import annotations

import functools
import hashlib
import math
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from client.p2p.errors import ProtocolViolation
from client.p2p.reconcile import (
    FINGERPRINT,
    HAVE,
    IDLIST,
    MAX_MESSAGE,
    Range,
    Reconciler,
    decode,
    encode,
    fingerprint,
    max_rounds,
    min_message,
)


def _ids(numbers: set[int] | range) -> list[bytes]:
    return [hashlib.sha256(n.to_bytes(8, "big")).digest() for n in numbers]


@functools.cache
def _pool() -> list[bytes]:
    """Ids of 0..309,999, computed once for the large tests."""
    return _ids(range(310_000))


class _Exchange:
    """Both sides of an exchange run to the end, with what crossed the wire."""

    def __init__(self, a: list[bytes], b: list[bytes], **options: int) -> None:
        self.left, self.right = Reconciler(a, **options), Reconciler(b, **options)
        budget = options.get("max_message", MAX_MESSAGE)
        self.fresh: dict[int, list[list[bytes]]] = {id(self.left): [], id(self.right): []}  # take_new_need() calls
        message: bytes | None = self.left.initiate()
        self.sent = self.messages = self.largest = 0
        sides, turn = [self.right, self.left], 0
        while message is not None:
            self.sent += len(message)
            self.messages += 1
            self.largest = max(self.largest, len(message))
            assert len(message) <= budget, (len(message), budget)
            side = sides[turn % 2]
            message = side.receive(message)  # raises past max_rounds
            self.fresh[id(side)].append(side.take_new_need())
            turn += 1

    def converged(self, a: list[bytes], b: list[bytes]) -> bool:
        return (
            self.left.need == set(b) - set(a)
            and self.right.need == set(a) - set(b)
            and self.left.done
            and self.right.done
        )


def _run(a: list[bytes], b: list[bytes], **options: int) -> tuple[Reconciler, Reconciler, int, int]:
    """Run an exchange to the end; returns both sides, the bytes exchanged and the number of messages."""
    run = _Exchange(a, b, **options)
    return run.left, run.right, run.sent, run.messages


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
    for _ in range(max_rounds(100)):  # a peer that answers every split with a wrong fingerprint again
        side.receive(bogus)
    with pytest.raises(ProtocolViolation, match="did not settle"):
        side.receive(bogus)
    finished = Reconciler([])
    assert finished.receive(encode([])) is None
    with pytest.raises(ProtocolViolation, match="after the sync exchange ended"):
        finished.receive(encode([]))


# -- any size, under the budget --------------------------------------------------------------------------------


def _sides(
    base: int, extra_a: int, extra_b: int, dropped: tuple[int, int], b_shares: bool, rnd: random.Random
) -> tuple[list[bytes], list[bytes]]:
    """A shared base of `base` ids (b holds none of it unless `b_shares`), each side missing some of it at random
    and holding its own extra ids."""
    pool, shared = _pool(), range(base)
    drop_a = set(rnd.sample(shared, min(dropped[0], base)))
    drop_b = set(rnd.sample(shared, min(dropped[1], base)))
    a = [pool[i] for i in shared if i not in drop_a] + pool[300_000 : 300_000 + extra_a]
    b = [pool[i] for i in shared if i not in drop_b] if b_shares else []
    return a, b + pool[305_000 : 305_000 + extra_b]


@settings(max_examples=8, deadline=None)
@given(
    base=st.integers(min_value=0, max_value=300_000),
    extra_a=st.integers(min_value=0, max_value=3_000),
    extra_b=st.integers(min_value=0, max_value=3_000),
    dropped=st.tuples(st.integers(min_value=0, max_value=1_500), st.integers(min_value=0, max_value=1_500)),
    b_shares=st.booleans(),
    budget=st.sampled_from([4 << 10, 16 << 10, MAX_MESSAGE]),
    rnd=st.randoms(use_true_random=False),
)
@example(base=300_000, extra_a=0, extra_b=0, dropped=(0, 0), b_shares=False, budget=16 << 10, rnd=random.Random(0))
@example(base=300_000, extra_a=0, extra_b=0, dropped=(0, 0), b_shares=False, budget=MAX_MESSAGE, rnd=random.Random(0))
@example(
    base=300_000,
    extra_a=3_000,
    extra_b=3_000,
    dropped=(1_500, 1_500),
    b_shares=True,
    budget=4 << 10,
    rnd=random.Random(0),
)
def test_every_message_fits_the_budget_and_large_sets_converge(
    base: int,
    extra_a: int,
    extra_b: int,
    dropped: tuple[int, int],
    b_shares: bool,
    budget: int,
    rnd: random.Random,
) -> None:
    a, b = _sides(base, extra_a, extra_b, dropped, b_shares, rnd)
    for first, second in ((a, b), (b, a)):  # either side may start
        run = _Exchange(first, second, max_message=budget)  # checks every message, both ways, every round
        assert run.converged(first, second)


@settings(max_examples=30, deadline=None)
@given(
    shared=st.integers(min_value=0, max_value=2_000),
    only_a=st.integers(min_value=0, max_value=1_000),
    only_b=st.integers(min_value=0, max_value=1_000),
    shape=st.sampled_from([(2, 1), (4, 3), (8, 8), (16, 2)]),
)
def test_the_least_budget_still_converges(shared: int, only_a: int, only_b: int, shape: tuple[int, int]) -> None:
    pool = _pool()
    a = pool[:shared] + pool[300_000 : 300_000 + only_a]
    b = pool[:shared] + pool[305_000 : 305_000 + only_b]
    branch, threshold = shape
    budget = min_message(branch, threshold)  # a few hundred bytes: a piece or two a message
    run = _Exchange(a, b, branch=branch, idlist_threshold=threshold, max_message=budget)
    assert run.converged(a, b)
    with pytest.raises(ValueError, match="max_message must be at least"):
        Reconciler([], branch=branch, idlist_threshold=threshold, max_message=budget - 1)


def test_sets_that_differ_by_150000_ids_each_way_converge_under_the_default_budget() -> None:
    pool = _pool()
    a, b = pool[:160_000], pool[:10_000] + pool[160_000:310_000]  # 10,000 shared, 150,000 each way
    run = _Exchange(a, b)
    assert run.converged(a, b)
    assert run.largest <= MAX_MESSAGE and run.messages < 30  # about 4.8 MB each way, in 4 MiB messages
    assert run.left.offered >= set(a) - set(b) and run.right.offered >= set(b) - set(a)


def test_take_new_need_hands_over_need_while_the_exchange_goes_on() -> None:
    pool = _pool()
    a, b = pool[:20_000], pool[5_000:30_000]
    run = _Exchange(a, b, max_message=4 << 10)  # about 160 KB to hand over each way, in 4 KiB messages
    assert run.converged(a, b)
    for side in (run.left, run.right):
        batches = run.fresh[id(side)]
        handed = [i for batch in batches for i in batch]
        assert all(batch == sorted(batch) for batch in batches)
        assert len(handed) == len(set(handed)) and set(handed) == side.need  # each id once, all of need
        assert sum(1 for batch in batches if batch) > 10  # in many batches, long before the end
        assert side.take_new_need() == []


# -- hostile peers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "budget"), [(100, MAX_MESSAGE), (5_000, 4 << 10)])
def test_a_peer_whose_fingerprints_never_match_is_cut_off(size: int, budget: int) -> None:
    side = Reconciler(_ids(range(size)), max_message=budget)
    bogus = encode([Range(None, FINGERPRINT, count=size + 1, fingerprint=b"\x11" * 16)])
    limit = max_rounds(size, budget)
    for _ in range(limit):
        reply = side.receive(bogus)
        assert reply is not None and len(reply) <= budget
    with pytest.raises(ProtocolViolation, match=f"did not settle in {limit} rounds"):
        side.receive(bogus)


def test_the_round_cap_grows_with_the_set_and_shrinks_with_the_budget() -> None:
    assert max_rounds(0) < max_rounds(300_000) < 200  # the default budget: close to the old fixed 128
    assert max_rounds(300_000, 4 << 10) > 300_000 * 32 // (4 << 10)  # enough to hand over every id
    assert max_rounds(10_000, 4 << 10) > max_rounds(10_000, 16 << 10)


@pytest.mark.parametrize(
    "reopen",
    [
        Range(None, FINGERPRINT, count=9, fingerprint=b"\x11" * 16),
        Range(None, IDLIST, ids=tuple(sorted(_ids({900, 901})))),
        Range(None, HAVE, ids=tuple(sorted(_ids({900, 901})))),
    ],
)
def test_a_range_answered_with_have_is_never_reopened(reopen: Range) -> None:
    ours, theirs = _ids({1, 2, 3}), sorted(_ids({3, 4}))
    side = Reconciler(ours)
    reply = side.receive(encode([Range(None, IDLIST, ids=tuple(theirs))]))
    assert reply is not None and decode(reply) == [Range(None, HAVE, ids=tuple(sorted(_ids({1, 2}))))]
    assert side.need == set(_ids({4}))
    assert side.receive(encode([reopen])) == encode([])  # finished: SKIP, so DONE; its ids are ignored
    assert side.done and side.need == set(_ids({4}))


def test_an_empty_have_ends_a_range() -> None:
    side = Reconciler(_ids({1, 2, 3}))
    listed = side.receive(encode([Range(None, FINGERPRINT, count=5, fingerprint=b"\x11" * 16)]))
    assert listed is not None and [r.mode for r in decode(listed)] == [IDLIST]
    assert side.receive(encode([Range(None, HAVE)])) == encode([])
    with pytest.raises(ProtocolViolation, match="after the sync exchange ended"):
        side.receive(encode([Range(None, FINGERPRINT, count=5, fingerprint=b"\x11" * 16)]))


def test_a_peer_that_answers_our_id_list_with_fingerprints_is_cut_off() -> None:
    ours = _ids({1, 2, 3})
    side = Reconciler(ours)
    stall = encode([Range(None, FINGERPRINT, count=5, fingerprint=b"\x11" * 16)])  # never the HAVE we asked for
    for _ in range(max_rounds(len(ours))):
        reply = side.receive(stall)
        assert reply is not None and decode(reply) == [Range(None, IDLIST, ids=tuple(sorted(ours)))]
    with pytest.raises(ProtocolViolation, match="did not settle"):
        side.receive(stall)
