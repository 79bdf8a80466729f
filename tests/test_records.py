"""Canonical form and content addressing of records."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.records import MAX_RECORD_BYTES, RecordError, make_record, parse_json_object, record_from_body

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
