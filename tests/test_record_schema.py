"""What each Datanet task asks of a record: check_record on values, check_body on canonical bytes."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.datanet import TASK_FIELDS, TASKS, RecordDoesNotFit, UnknownTask, check_body, check_record
from client.records import RecordError, make_record


def test_every_task_says_what_its_records_need() -> None:
    assert set(TASK_FIELDS) == set(TASKS)
    assert issubclass(RecordDoesNotFit, RecordError) and issubclass(UnknownTask, RecordError)


@pytest.mark.parametrize(
    ("task", "obj"),
    [
        ("intent-classification", {"text": "Can I book Tuesday?", "label": "book_appointment"}),
        ("intent-classification", {"label": "x", "text": " y ", "source": "clinic", "n": 3, "extra": [1, {"a": None}]}),
        ("text", {"text": "free text"}),
        ("text", {"text": "free text", "label": 7, "meta": {"lang": "en"}}),  # other keys are anyone's business
    ],
)
def test_records_that_fit(task: str, obj: dict[str, Any]) -> None:
    check_record(task, obj)
    assert check_body(task, make_record(obj).body) == make_record(obj)


@pytest.mark.parametrize(
    ("task", "obj", "problem"),
    [
        ("intent-classification", {"text": "hello"}, 'the intent-classification task needs a "label" field'),
        ("intent-classification", {"label": "greet"}, 'the intent-classification task needs a "text" field'),
        ("intent-classification", {"text": "hello", "label": ""}, '"label" is empty'),
        ("intent-classification", {"text": "hello", "label": " \t\r\n"}, '"label" is empty'),
        ("intent-classification", {"text": "hello", "label": 3}, '"label" must be text, not a number'),
        ("intent-classification", {"text": "hello", "label": None}, '"label" must be text, not null'),
        ("intent-classification", {"text": ["hello"], "label": "greet"}, '"text" must be text, not an array'),
        ("text", {}, 'the text task needs a "text" field'),
        ("text", {"Text": "case matters"}, 'the text task needs a "text" field'),
        ("text", {"text": ""}, '"text" is empty'),
        ("text", {"text": True}, '"text" must be text, not true/false'),
        ("text", {"text": 1.5}, '"text" must be text, not a number'),
        ("text", {"text": {"body": "x"}}, '"text" must be text, not an object'),
    ],
)
def test_records_that_do_not_fit_say_what_is_wrong(task: str, obj: dict[str, Any], problem: str) -> None:
    with pytest.raises(RecordDoesNotFit) as caught:
        check_record(task, obj)
    assert str(caught.value) == problem
    with pytest.raises(RecordDoesNotFit, match=f"^{re.escape(problem)}$"):
        check_body(task, make_record(obj).body)


def test_only_a_few_ascii_blanks_count_as_empty() -> None:
    check_record("text", {"text": "\u00a0"})  # a no-break space is content: the line does not move with Unicode
    check_record("text", {"text": "\f"})


def test_an_unknown_task_fits_nothing() -> None:
    with pytest.raises(UnknownTask, match="unknown task 'translation'; this version knows intent-classification"):
        check_record("translation", {"text": "hi", "label": "x"})


def test_check_body_refuses_bytes_that_are_not_a_canonical_record_before_looking_at_fields() -> None:
    with pytest.raises(RecordError, match="canonical") as caught:
        check_body("text", b'{"text": "spaced"}')
    assert not isinstance(caught.value, RecordDoesNotFit)
    with pytest.raises(RecordError, match="must be a JSON object"):
        check_body("text", b'["text"]')


@given(st.dictionaries(st.text(max_size=6), st.text(max_size=6) | st.integers() | st.none(), max_size=5))
def test_check_body_agrees_with_check_record(obj: dict[str, Any]) -> None:
    body = make_record(obj).body
    for task in TASKS:
        assert _refusal(partial(check_record, task, obj)) == _refusal(partial(check_body, task, body))


def _refusal(check: Callable[[], object]) -> str | None:
    try:
        check()
    except RecordDoesNotFit as exc:
        return str(exc)
    return None
