"""Canonical form and content addressing of records."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.records import (
    MAX_DEPTH,
    MAX_RECORD_BYTES,
    RecordError,
    canonical_object,
    make_record,
    nesting_depth,
    parse_json_object,
    record_from_body,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
records = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@given(records)
def test_canonical_bytes_round_trip_to_the_same_record(obj: dict[str, Any]) -> None:
    record = make_record(obj)
    assert record.record_id == hashlib.sha256(record.body).digest()
    assert record_from_body(record.body) == record
    assert json.loads(record.body) == obj


@given(records)
def test_key_order_and_whitespace_do_not_change_the_id(obj: dict[str, Any]) -> None:
    reordered = dict(reversed(list(obj.items())))
    spaced = json.dumps(reordered, indent=3)
    assert make_record(parse_json_object(spaced)).record_id == make_record(obj).record_id


def test_different_content_gives_a_different_id() -> None:
    assert make_record({"text": "a"}).record_id != make_record({"text": "b"}).record_id
    assert make_record({"n": 1}).record_id != make_record({"n": "1"}).record_id


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": Infinity}', "Infinity is not a JSON number"),
        ("[1, 2]", "must be a JSON object, not list"),
        ('{"a": ', "invalid JSON"),
        ('"just a string"', "must be a JSON object, not str"),
    ],
)
def test_malformed_json_is_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        parse_json_object(text)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(RecordError, match="surrogate"):
        make_record(parse_json_object('{"t": "\\ud800"}'))


def test_oversized_record_is_refused() -> None:
    with pytest.raises(RecordError, match="more than"):
        make_record({"text": "x" * MAX_RECORD_BYTES})


def test_non_canonical_bytes_are_refused() -> None:
    with pytest.raises(RecordError, match="canonical"):
        record_from_body(b'{"b":1, "a":2}')
    with pytest.raises(RecordError, match="UTF-8"):
        record_from_body(b'{"a":"\xff"}')


# The canonical form, written out by hand from the module docstring: keys sorted, no whitespace, UTF-8 with no
# ASCII escaping (é is C3 A9, ☕ is E2 98 95), integers as integers, floats in shortest form.
PINNED_BODY = b'{"label":"order","n":1,"tags":["a","b"],"text":"caf\xc3\xa9 \xe2\x98\x95","w":0.5}'
PINNED_ID = "895c7c430e71f154309c3889d3db8dc6e2d402f907fef8ee04ff1a75ef96720c"


def test_one_record_id_is_pinned_to_the_documented_canonical_form() -> None:
    assert hashlib.sha256(PINNED_BODY).hexdigest() == PINNED_ID
    record = make_record({"text": "café ☕", "w": 0.5, "label": "order", "tags": ["a", "b"], "n": 1})
    assert record.body == PINNED_BODY
    assert record.record_id.hex() == PINNED_ID
    assert record_from_body(PINNED_BODY).record_id.hex() == PINNED_ID


def _nested(depth: int) -> str:
    """A record whose arrays and objects nest exactly `depth` deep (the record itself is 1)."""
    return '{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def _nested_value(depth: int) -> dict[str, Any]:
    inner: list[Any] = []
    for _ in range(depth - 2):
        inner = [inner]
    return {"a": inner}


def test_nesting_at_the_limit_is_a_record_and_one_deeper_is_refused() -> None:
    at_limit = parse_json_object(_nested(MAX_DEPTH))
    assert record_from_body(make_record(at_limit).body) == make_record(_nested_value(MAX_DEPTH))
    with pytest.raises(RecordError, match=f"nested more than {MAX_DEPTH} deep"):
        parse_json_object(_nested(MAX_DEPTH + 1))
    with pytest.raises(RecordError, match=f"nested more than {MAX_DEPTH} deep"):
        make_record(_nested_value(MAX_DEPTH + 1))
    with pytest.raises(RecordError, match=f"nested more than {MAX_DEPTH} deep"):
        record_from_body(_nested(MAX_DEPTH + 1).encode())


def test_a_100000_deep_nesting_is_refused_quickly_without_recursion() -> None:
    text = _nested(100_000)
    started = time.perf_counter()
    with pytest.raises(RecordError, match="nested more than"):  # not RecursionError
        parse_json_object(text)
    with pytest.raises(RecordError, match="nested more than"):
        make_record(_nested_value(100_000))
    assert time.perf_counter() - started < 2.0


def test_a_cyclic_value_is_refused_not_looped_over() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(RecordError, match="nested more than"):
        make_record(cyclic)


def test_brackets_inside_strings_do_not_count() -> None:
    text = r'{"a": "[[[[{{{{\\\"[[[[", "b": ["]]]]", "\\"]}'
    assert json.loads(text) == {"a": '[[[[{{{{\\"[[[[', "b": ["]]]]", "\\"]}
    assert nesting_depth(text) == 2
    assert parse_json_object('{"x":"' + "[" * (10 * MAX_DEPTH) + '"}')["x"] == "[" * (10 * MAX_DEPTH)


# Quotes and backslashes that could make a string pattern backtrack, or retry from every later quote: linear
# code takes milliseconds here, quadratic code many seconds.
@pytest.mark.parametrize("text", ['"\\' * 50_000, '"\\"' * 50_000, '["' + "\\" * 100_001, "[" * 1_000_000])
def test_hostile_text_is_measured_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    nesting_depth(text)
    assert time.perf_counter() - started < 1.0


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\:, a\n\u00e9', max_size=12)
deep_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | tricky_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3),
    max_leaves=30,
)


@given(deep_values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_nesting_depth_of_the_text_is_the_depth_of_the_parsed_value(
    value: Any, ensure_ascii: bool, indent: int | None
) -> None:
    assert nesting_depth(json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)) == _depth(value)


@given(deep_values, st.integers(min_value=MAX_DEPTH - 8, max_value=MAX_DEPTH + 2))
def test_text_and_value_checks_agree_at_the_limit(value: Any, wrappers: int) -> None:
    obj: Any = value
    for _ in range(wrappers):
        obj = [obj]
    obj = {"a": obj}
    fits = _depth(obj) <= MAX_DEPTH
    from_text = _refusal(lambda: parse_json_object(json.dumps(obj, ensure_ascii=False)))
    from_value = _refusal(lambda: make_record(obj))
    expected = None if fits else f"arrays and objects nested more than {MAX_DEPTH} deep"
    assert from_text == from_value == expected


def _refusal(check: Callable[[], object]) -> str | None:
    try:
        check()
    except RecordError as exc:
        return str(exc)
    return None


def _strict(body: bytes) -> bool:
    """The strict definition: parse refusing duplicates and NaN, re-encode, compare."""
    try:
        return make_record(parse_json_object(body.decode("utf-8"))).body == body
    except (RecordError, UnicodeDecodeError):
        return False


def _fast(body: bytes) -> bool:
    try:
        canonical_object(body)
    except RecordError:
        return False
    return True


near_canonical = st.one_of(
    records.map(lambda obj: make_record(obj).body),  # canonical
    records.map(lambda obj: json.dumps(obj, ensure_ascii=True).encode()),  # spaces, escapes
    st.sampled_from(
        [
            b'{"a":1,"a":1}',
            b'{"a":NaN}',
            b'{"a":Infinity}',
            b'{"a":1e400}',
            b'{"a":1.0}',
            b'{"a":1E5}',
            b'{"a":"\\ud800"}',
            b'{"b":1,"a":2}',
            b"[1]",
            b'{"a":-0.0}',
            b"\xff",
            b'{"a":' * 70 + b"1" + b"}" * 70,
        ]
    ),
    st.binary(max_size=40),
)


@given(near_canonical)
def test_the_fast_canonical_check_accepts_exactly_what_the_strict_one_accepts(body: bytes) -> None:
    assert _fast(body) == _strict(body)
