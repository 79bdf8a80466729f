"""Records and their canonical form.

A record is a JSON object. Its canonical bytes are UTF-8 JSON with keys sorted, no insignificant whitespace, no
ASCII escaping, integers as integers and floats in Python's shortest round-trip form; NaN and Infinity are
refused, and so are duplicate keys (they make a record mean two things). `record_id = SHA-256(canonical bytes)`,
so the same record imported twice, from any file format that yields the same object, has the same id.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, NewType

RecordId = NewType("RecordId", bytes)

MAX_RECORD_BYTES = 1 << 20  # 1 MiB of canonical JSON per record


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


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse one JSON object strictly (no duplicate keys, no NaN/Infinity)."""
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise RecordError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise RecordError(f"a record must be a JSON object, not {type(value).__name__}")
    return value


def _check_numbers(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError("NaN and Infinity are not allowed")
    if isinstance(value, dict):
        for item in value.values():
            _check_numbers(item)
    elif isinstance(value, list):
        for item in value:
            _check_numbers(item)


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    _check_numbers(obj)
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
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
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("not valid UTF-8") from None
    record = make_record(parse_json_object(text))
    if record.body != body:
        raise RecordError("bytes are not in canonical form")
    return record
