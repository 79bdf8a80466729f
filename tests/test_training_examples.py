"""Records to training examples: fields, sizes, the held-out split."""

from __future__ import annotations

import hashlib
import json

import pytest

from client.training.errors import ShardTooSmall, TaskMismatch
from client.training.examples import build, check_size, record_set_hash, split_holdout


def _row(obj: dict[str, str]) -> tuple[bytes, bytes]:
    body = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).digest(), body


def test_classifier_examples_index_sorted_labels() -> None:
    rows = [_row({"text": "a", "label": "z"}), _row({"text": "b", "label": "m"}), _row({"text": "c", "label": "z"})]
    examples, ids = build(rows, "classifier")
    assert examples.labels == ("m", "z")
    assert examples.label_ids == (1, 0, 1)
    assert examples.texts == ("a", "b", "c")
    assert ids == [r for r, _ in rows]


def test_evaluation_labels_must_be_known() -> None:
    with pytest.raises(TaskMismatch, match="labels the training records do not: q"):
        build([_row({"text": "a", "label": "q"})], "classifier", labels=("m", "z"))


@pytest.mark.parametrize(
    ("obj", "kind", "problem"),
    [
        ({"label": "x"}, "classifier", 'no "text" field'),
        ({"text": "  "}, "causal-lm", 'no "text" field'),
        ({"text": "hi"}, "classifier", 'no "label" field'),
    ],
)
def test_missing_fields_are_named(obj: dict[str, str], kind: str, problem: str) -> None:
    with pytest.raises(TaskMismatch, match=problem):
        build([_row(obj)], kind)


def test_too_few_records_or_labels() -> None:
    few, _ = build([_row({"text": f"t{i}", "label": "a"}) for i in range(5)], "classifier")
    with pytest.raises(ShardTooSmall, match="at least 16"):
        check_size(few, "classifier")
    one_label, _ = build([_row({"text": f"t{i}", "label": "a"}) for i in range(20)], "classifier")
    with pytest.raises(ShardTooSmall, match="same label"):
        check_size(one_label, "classifier")


def test_holdout_is_deterministic_disjoint_and_about_a_fifth() -> None:
    rows = [_row({"text": f"t{i}"}) for i in range(2000)]
    train, held = split_holdout(rows)
    assert split_holdout(list(reversed(rows)))[1] == list(reversed(held))
    assert not {r for r, _ in train} & {r for r, _ in held}
    assert len(train) + len(held) == len(rows)
    assert 0.15 < len(held) / len(rows) < 0.25
    assert record_set_hash(r for r, _ in rows) == record_set_hash(r for r, _ in reversed(rows))
