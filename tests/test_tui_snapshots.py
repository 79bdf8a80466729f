"""SVG snapshots (pytest-textual-snapshot) of every screen of the TUI at 80x24 and 120x40, drawn from the recorded
node (tests/recorded_node.py), so that each run draws exactly the same. A changed look fails here until the new
snapshots are looked at and accepted: `pytest tests/test_tui_snapshots.py --snapshot-update`, then review the
SVGs under tests/__snapshots__/ (the failure report, snapshot_report.html, shows old and new side by side).

The recorded answers are held to the contract a real node meets: the same checks run on both (the control API's
declared result types, and the fields of the records, Datanets, jobs, batches and provenance inside them)."""

from __future__ import annotations

import asyncio
import os
import time
import types
import typing
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from client.node import api
from client.node.control import ControlClient
from tests.conftest import Cli
from tests.recorded_node import ANSWERS, COMPUTED, RecordedNode
from tests.test_cli_chain import first_records
from tui.app import DatanetApp

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
SCREENS = {"1": "home", "2": "datanet", "3": "peers", "4": "training", "5": "chain", "6": "leaves", "7": "log",
           "8": "jobs"}  # fmt: skip
JSON_TYPES: dict[Any, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


# --- the contract: the recorded node answers as a real node does ---------------------------------------------


def problems(method: str, answer: Any) -> list[str]:
    """What in `answer` does not match `method`'s declared result (top-level fields, their JSON types)."""
    declared = api.METHODS[method].result
    items = answer if declared.startswith("list[") else [answer]
    if declared.startswith("list[") and not isinstance(answer, list):
        return [f"{method}: not a list"]
    hints = typing.get_type_hints(getattr(api, declared.removeprefix("list[").removesuffix("]")))
    found = []
    for item in items:
        if not isinstance(item, dict) or set(item) != set(hints):
            found.append(f"{method}: fields {sorted(item) if isinstance(item, dict) else item} != {sorted(hints)}")
            continue
        for name, hint in hints.items():
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            allowed = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
            origin = [typing.get_origin(a) or a for a in allowed]
            if item[name] is None and union and type(None) in typing.get_args(hint):
                continue
            if Any in origin:
                continue
            kinds = tuple(t for o in origin for t in JSON_TYPES.get(o, (o,)) if isinstance(t, type))
            if kinds and not isinstance(item[name], kinds):
                found.append(f"{method}.{name}: {type(item[name]).__name__}, not {hint}")
    return found


def inner_fields(method: str, answer: Any) -> dict[str, set[str]]:
    """The fields of the objects inside an answer that the screens read (each list's first item)."""
    paths = {
        "datanets": lambda a: a["datanets"],
        "records.list": lambda a: a["records"],
        "records.show": lambda a: a["provenance"],
        "batches": lambda a: a["batches"],
        "peers": lambda a: a,
        "adapters.list": lambda a: a["adapters"],
    }
    if method not in paths or not paths[method](answer):
        return {}
    first = paths[method](answer)[0]
    fields = {method: set(first)}
    for name, value in first.items():  # one level further: an adapter's base model, Datanet, what it was trained on
        if isinstance(value, dict) and name not in ("files", "hyperparameters", "versions", "evaluation", "training"):
            fields[f"{method}.{name}"] = set(value)
    return fields


def inner_fields_of(answers: dict[str, Any]) -> dict[str, set[str]]:
    return {part: keys for method, answer in answers.items() for part, keys in inner_fields(method, answer).items()}


def recorded_answers() -> dict[str, Any]:
    node = RecordedNode()
    params: dict[str, dict[str, Any]] = {
        "records.list": {"limit": 5},
        "records.show": {"id": "00000000"},
        "job": {"id": "7a1c0e5b9d2f4c11"},
    }
    return {m: asyncio.run(node.call(m, **params.get(m, {}))) for m in [*ANSWERS, *COMPUTED]}


def test_the_recorded_answers_meet_the_declared_contract() -> None:
    answers = recorded_answers()
    assert set(answers) <= set(api.METHODS)
    assert [p for method, answer in answers.items() for p in problems(method, answer)] == []
    missing = {k: v for k, v in ANSWERS["status"].items() if k != "online"}  # and the check does see a difference
    assert problems("status", missing) and problems("status", {**ANSWERS["status"], "uptime_s": "soon"})


def test_a_real_nodes_answers_meet_the_same_contract_and_have_the_recorded_fields(
    train_cli: Cli, tmp_path: Path
) -> None:
    cli = train_cli
    cli.ok("create", "ward", "--task", "intent-classification", "--on-chain")  # bound, as the recorded one is
    cli.ok("import", "ward", str(first_records(tmp_path, 64)))
    cli.ok("prove", "ward", "--batch", "16")
    cli.ok("train", "ward", "--base", "tiny-classifier", "--epochs", "1", "--threads", "1")
    control = ControlClient(cli.data_dir, timeout=120)
    first = control.call("records.list", datanet="ward", limit=1)["records"][0]["id"]
    params: dict[str, dict[str, Any]] = {
        "batches": {"datanet": "ward"},
        "records.list": {"datanet": "ward", "limit": 5},
        "records.show": {"datanet": "ward", "id": first},
        "job": {"id": control.call("jobs", limit=1)[0]["id"]},
        "log.tail": {"lines": 5},
    }
    real = {m: control.call(m, **params.get(m, {})) for m in [*ANSWERS, *COMPUTED]}
    assert [p for method, answer in real.items() for p in problems(method, answer)] == []
    recorded = recorded_answers()
    for method in real:
        mine, theirs = inner_fields(method, recorded[method]), inner_fields(method, real[method])
        for part in mine.keys() & theirs.keys():  # what both have (a real peer list is empty here)
            assert mine[part] == theirs[part], part
    assert {"datanets.binding", "adapters.list.trained_on", "records.show"} <= set(inner_fields_of(real))


# --- the snapshots -------------------------------------------------------------------------------------------


@pytest.fixture
def utc() -> Iterator[None]:
    """Times drawn in UTC, whatever the machine's zone."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def loaded(key: str) -> Callable[[Pilot[Any]], Any]:
    """Open screen `key` and wait until the recorded node's answers and events are drawn on it."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, DatanetApp)
        await pilot.press(key)
        deadline = asyncio.get_running_loop().time() + 10
        while not (app.connected and len(app.losses.get("7a1c0e5b9d2f4c11", ())) == 12 and app.syncs and app.txs):
            assert asyncio.get_running_loop().time() < deadline, "the recorded node's data never arrived"
            await pilot.pause(0.05)
        await pilot.pause(0.6)  # the refresh after the last event (at most four a second), then idle
        app.screen.set_focus(None)  # no blinking cursor in the picture

    return run_before


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("key", list(SCREENS), ids=list(SCREENS.values()))
def test_every_screen_looks_as_accepted(snap_compare: Any, utc: None, key: str, size: str, tmp_path: Path) -> None:
    app = DatanetApp(RecordedNode(), where="recorded node", config_dir=tmp_path)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=loaded(key))


# --- behaviour on the recorded node ----------------------------------------------------------------------------


class SpendingNode(RecordedNode):
    """A training run with differential privacy whose budget is spent step by step."""

    async def events(self, on_subscribed: Callable[[], None] | None = None) -> AsyncGenerator[dict[str, Any]]:
        if on_subscribed is not None:
            on_subscribed()
        for step, spent in ((10, 2.1), (20, 3.4), (30, 3.7), (40, 3.95)):
            budget = {"dp_epsilon_spent": spent, "dp_epsilon_target": 4.0}
            yield {"type": "train.progress", "id": "7a1c0e5b9d2f4c11", "step": step, "total_steps": 40, **budget}
        await asyncio.Event().wait()


def test_a_privacy_budget_running_out_is_a_notification_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = DatanetApp(SpendingNode(), where="recorded node", config_dir=tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            deadline = asyncio.get_running_loop().time() + 10
            while app.training.get("7a1c0e5b9d2f4c11", {}).get("step") != 40:
                assert asyncio.get_running_loop().time() < deadline
                await pilot.pause(0.05)
            said = [str(n.message) for n in app._notifications if "privacy budget" in str(n.message)]
            assert len(said) == 1 and "ε 3.70 of its privacy budget of 4" in said[0]  # from 90% on, once
            await pilot.pause(0.5)
            assert "DP ε 3.95 of 4.0" in str(app.screen.query_one("#train-status").render())

    asyncio.run(scenario())


class FailedJobNode(RecordedNode):
    """The recorded node with one failed import."""

    async def call(self, method: str, /, **params: Any) -> Any:
        answer = await super().call(method, **params)
        if method == "jobs":
            failed = {**answer[0], "id": "0badc0ffee000001", "kind": "import", "state": "failed", "progress": {}}
            answer.insert(0, {**failed, "error": "ward.jsonl:3: a record needs a 'label'.", "params": {}})
        return answer


def test_home_lists_alerts(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = DatanetApp(FailedJobNode(), where="recorded node", config_dir=tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = asyncio.get_running_loop().time() + 10
            while "alerts" not in str(app.screen.query_one("#node").render()):
                assert asyncio.get_running_loop().time() < deadline
                await pilot.pause(0.05)
            shown = str(app.screen.query_one("#node").render())
            assert "alerts    1 failed job(s), the latest: ward.jsonl:3: a record needs a 'label'. (8: jobs)" in shown

    asyncio.run(scenario())
