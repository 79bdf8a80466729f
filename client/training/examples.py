"""Turning a Datanet's records into training examples (in memory only: no plaintext temporary files)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from client.training.errors import ShardTooSmall, TaskMismatch

MIN_CLASSIFIER_RECORDS = 16
MIN_TEXT_RECORDS = 8
HOLDOUT_PERCENT = 20


@dataclass(frozen=True, slots=True)
class Examples:
    """Texts, and for classification their label indices into `labels` (sorted label names)."""

    texts: tuple[str, ...]
    label_ids: tuple[int, ...] | None
    labels: tuple[str, ...] | None

    def __len__(self) -> int:
        return len(self.texts)


def record_set_hash(record_ids: Iterable[bytes]) -> str:
    """A hash naming exactly which records were used (sorted ids), for the provenance manifest."""
    digest = hashlib.sha256()
    for record_id in sorted(record_ids):
        digest.update(record_id)
    return digest.hexdigest()


def _fields(body: bytes, record_id: bytes, kind: str) -> tuple[str, str | None]:
    obj = json.loads(body)
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise TaskMismatch(f'Record {record_id.hex()[:16]} has no "text" field; this Datanet cannot train a {kind}.')
    if kind != "classifier":
        return text, None
    label = obj.get("label")
    if not isinstance(label, str) or not label:
        raise TaskMismatch(
            f'Record {record_id.hex()[:16]} has no "label" field; classification needs {{"text", "label"}}.'
        )
    return text, label


def build(
    rows: list[tuple[bytes, bytes]], kind: str, labels: tuple[str, ...] | None = None
) -> tuple[Examples, list[bytes]]:
    """Examples from (record id, canonical body) pairs; returns them and the ids used."""
    texts: list[str] = []
    names: list[str | None] = []
    for record_id, body in rows:
        text, label = _fields(body, record_id, kind)
        texts.append(text)
        names.append(label)
    if kind != "classifier":
        return Examples(tuple(texts), None, None), [r for r, _ in rows]
    present = [n for n in names if n is not None]
    label_set = labels if labels is not None else tuple(sorted(set(present)))
    index = {name: i for i, name in enumerate(label_set)}
    unknown = sorted({n for n in present if n not in index})
    if unknown:
        raise TaskMismatch(f"The evaluation records use labels the training records do not: {', '.join(unknown)}.")
    return Examples(tuple(texts), tuple(index[n] for n in present), label_set), [r for r, _ in rows]


def check_size(train: Examples, kind: str) -> None:
    minimum = MIN_CLASSIFIER_RECORDS if kind == "classifier" else MIN_TEXT_RECORDS
    if len(train) < minimum:
        raise ShardTooSmall(
            f"Only {len(train)} records to train on; at least {minimum} are needed (import more records first)."
        )
    if kind == "classifier" and train.labels is not None and len(train.labels) < 2:
        raise ShardTooSmall("All training records have the same label; classification needs at least two labels.")


def split_holdout(rows: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """A deterministic held-out slice (by record id) when no public evaluation split is given."""
    cut = 256 * HOLDOUT_PERCENT // 100
    train = [r for r in rows if r[0][0] >= cut]
    held = [r for r in rows if r[0][0] < cut]
    return train, held
