"""What a Datanet is locally: a named shard serving one task. Tasks say what a record looks like.

A record fits a task when it holds each field the task needs as a string with something in it besides spaces,
tabs and line breaks (an explicit set, not Python's idea of Unicode whitespace, so every peer draws the same line);
other fields are allowed and kept (an id, a source, a language...), and the order of keys never matters.

    task                    needs
    intent-classification   "text", "label"
    text                    "text"

`check_record` and `check_body` are pure: the importers call the first on every record before storing it, and
sync calls the second on every record a peer sends, so a record one peer stores every peer accepts. They raise
leaves of `RecordError`:

    RecordError           (client.records) the bytes or value are not a well-formed record
    ├── RecordDoesNotFit  a well-formed record lacks a field its Datanet's task needs, or has it empty
    └── UnknownTask       the task is not one this version knows, so no record can be checked against it
"""

from __future__ import annotations

import json
from typing import Any, Final

from client.records import Record, RecordError, record_from_body

TASKS: Final[dict[str, str]] = {
    "intent-classification": 'short texts with a label: {"text": "...", "label": "..."}',
    "text": 'free text for language-model fine-tuning: {"text": "..."}',
}
DEFAULT_TASK: Final = "text"
TASK_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "intent-classification": ("text", "label"),
    "text": ("text",),
}


class RecordDoesNotFit(RecordError):
    """A well-formed record lacks what its Datanet's task needs; the message names the field."""


class UnknownTask(RecordError):
    """A task this version does not know (a newer client's Datanet, or a damaged shard)."""


_BLANK: Final = " \t\n\r"
_JSON_TYPES: Final = {type(None): "null", bool: "true/false", int: "a number", float: "a number", list: "an array"}


def check_record(task: str, obj: dict[str, Any]) -> None:
    """Raise RecordDoesNotFit unless `obj` has every field `task` needs, each a string that is not blank.

    Pure, and a function of `task` and the value alone."""
    fields = TASK_FIELDS.get(task)
    if fields is None:
        raise UnknownTask(f"unknown task {task!r}; this version knows {', '.join(sorted(TASK_FIELDS))}")
    for name in fields:
        if name not in obj:
            raise RecordDoesNotFit(f'the {task} task needs a "{name}" field')
        value = obj[name]
        if not isinstance(value, str):
            raise RecordDoesNotFit(f'"{name}" must be text, not {_JSON_TYPES.get(type(value), "an object")}')
        if not value.strip(_BLANK):
            raise RecordDoesNotFit(f'"{name}" is empty')


def check_body(task: str, body: bytes) -> Record:
    """The record of `body` if its bytes are a canonical record that fits `task`; raises a RecordError if not."""
    record = record_from_body(body)
    check_record(task, json.loads(record.body))  # canonical, so no duplicate keys and at most MAX_DEPTH deep
    return record


def schema_hash(task: str) -> bytes:
    """What a Datanet's records look like, as the on-chain registry stores it: the hash of its task's name."""
    import hashlib

    return hashlib.sha256(f"datanet/task/{task}".encode()).digest()


def task_of(schema: str) -> str | None:
    """The task whose schema hash is `schema` (0x hex), or None for one this version does not know."""
    return next((t for t in TASKS if "0x" + schema_hash(t).hex() == schema), None)
