"""Records and their canonical form.

A record is a JSON object. Its canonical bytes are UTF-8 JSON with keys sorted, no insignificant whitespace, no
ASCII escaping, integers as integers and floats in Python's shortest round-trip form; NaN and Infinity are
refused, and so are duplicate keys (they make a record mean two things). `record_id = SHA-256(canonical bytes)`,
so the same record imported twice, from any file format that yields the same object, has the same id.

Arrays and objects nest at most `MAX_DEPTH` (64) deep; the record itself is depth 1, so `{"a": [1]}` is 2.
The depth is measured on the text before it is parsed, and on values before they are encoded, in both cases
without recursion: whether a record is valid depends on its bytes alone, never on Python's recursion limit or
on how deep the caller's stack already is, so a record one peer accepts every peer accepts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NewType

RecordId = NewType("RecordId", bytes)

MAX_RECORD_BYTES = 1 << 20  # 1 MiB of canonical JSON per record
MAX_DEPTH = 64  # arrays and objects nested in a record, the record included

# One JSON string, or an unterminated one running to the end of the text. Possessive quantifiers and a match at
# every quote keep this linear however hostile the text (no backtracking, no retry from each later quote).
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# The canonical encoding, built once (json.dumps with these options builds an encoder on every call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class RecordError(ValueError):
    """A value that cannot be a record; the message says why, in a few words."""


@dataclass(frozen=True, slots=True)
class Record:
    record_id: RecordId
    body: bytes  # canonical bytes


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RecordError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise RecordError(f"{name} is not a JSON number")


def _too_deep() -> RecordError:
    return RecordError(f"arrays and objects nested more than {MAX_DEPTH} deep")


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON text (0 for a scalar), brackets inside strings not counted.

    A linear scan, no recursion. For text that is valid JSON it is the depth of the parsed value; for other text
    it is still a number that depends on the text alone."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse one JSON object strictly (no duplicate keys, no NaN/Infinity, at most MAX_DEPTH deep)."""
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
        raise _too_deep()
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise RecordError(f"a record must be a JSON object, not {type(value).__name__}")
    return value


def _check_values(obj: Any) -> None:
    """No NaN or Infinity, and at most MAX_DEPTH deep; an explicit stack, so neither a deep nor a cyclic value
    can exhaust Python's (a cycle is refused as too deep)."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise RecordError("NaN and Infinity are not allowed")
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children)


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    _check_values(obj)
    try:
        text = _ENCODER.encode(obj)
        body = text.encode("utf-8", errors="strict")
    except UnicodeEncodeError:
        raise RecordError("text contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode") from None
    except (TypeError, ValueError) as exc:
        raise RecordError(str(exc)) from None
    if len(body) > MAX_RECORD_BYTES:
        raise RecordError(f"record is {len(body)} bytes, more than the {MAX_RECORD_BYTES} allowed")
    return body


def make_record(obj: dict[str, Any]) -> Record:
    body = canonical_bytes(obj)
    return Record(RecordId(hashlib.sha256(body).digest()), body)


def record_from_body(body: bytes) -> Record:
    """Re-derive a record from bytes claimed to be canonical; raises RecordError if they are not."""
    canonical_object(body)
    return Record(RecordId(hashlib.sha256(body).digest()), body)


def canonical_object(body: bytes) -> dict[str, Any]:
    """The object of bytes claimed to be a canonical record (what sync receives); raises RecordError if they are
    not one. It accepts exactly what parsing strictly and re-encoding accepts (a property test checks), in about
    half the time: canonical bytes can hold no duplicate key (re-encoding keeps one, so the bytes would differ) and
    no NaN or Infinity (re-encoding refuses them), so a plain parse and a byte-for-byte re-encoding decide."""
    if len(body) > MAX_RECORD_BYTES:
        raise RecordError(f"record is {len(body)} bytes, more than the {MAX_RECORD_BYTES} allowed")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("not valid UTF-8") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
        raise _too_deep()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise RecordError(f"a record must be a JSON object, not {type(value).__name__}")
    try:
        again = _ENCODER.encode(value)
        canonical = again.encode("utf-8", errors="strict") == body
    except (UnicodeEncodeError, ValueError):
        canonical = False
    if not canonical:
        raise RecordError("bytes are not in canonical form")
    return value
