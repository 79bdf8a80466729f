"""The committed sample Datanet is exactly what its generator builds."""

from __future__ import annotations

import json
from collections import Counter

from client.sample import build_sample


def test_committed_sample_matches_its_generator() -> None:
    train, evaluation = build_sample.build()
    assert build_sample.TRAIN_FILE.read_bytes() == build_sample.to_jsonl(train)
    assert build_sample.EVAL_FILE.read_bytes() == build_sample.to_jsonl(evaluation)


def test_sample_is_balanced_and_the_splits_do_not_overlap() -> None:
    train = [json.loads(line) for line in build_sample.TRAIN_FILE.read_text().splitlines()]
    evaluation = [json.loads(line) for line in build_sample.EVAL_FILE.read_text().splitlines()]
    assert set(Counter(r["label"] for r in train).values()) == {build_sample.TRAIN_PER_LABEL}
    assert set(Counter(r["label"] for r in evaluation).values()) == {build_sample.EVAL_PER_LABEL}
    assert not {r["text"] for r in train} & {r["text"] for r in evaluation}
