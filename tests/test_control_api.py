"""The typed control API (client/node/api.py) against the real server on a real Unix socket: the docs list exactly
the declared methods, parameters, results and events; a request the declarations refuse, a request over the size
limit, a node of another API version and a node that dies mid-call are each one sentence (and exit code 7 for the
node); a method's error carries its exit code; a subscriber that falls behind is told how many events it missed."""

from __future__ import annotations

import json
import re
import socket
import threading
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from client import failures
from client.errors import ClientError
from client.node import api
from client.node.control import (
    MAX_REQUEST,
    ControlClient,
    Events,
    Handler,
    NodeError,
    RemoteError,
    serve,
    socket_path,
)
from tests.conftest import REPO

DOC = REPO / "docs" / "control-api.md"


def test_the_docs_list_exactly_the_declared_methods_parameters_results_and_events() -> None:
    text = DOC.read_text()
    sections = re.split(r"^### `([a-z_.]+)`$", text.split("## Methods", 1)[1].split("## Events", 1)[0], flags=re.M)
    documented = {sections[i]: sections[i + 1] for i in range(1, len(sections), 2)}
    assert list(documented) == list(api.METHODS)
    for name, method in api.METHODS.items():
        rows = re.findall(r"^\| `(\w+)` \| (\w+) \| (yes|no) \|", documented[name], flags=re.M)
        assert rows == [(p.name, p.kind, "yes" if p.required else "no") for p in method.params], name
        assert f"Result: `{method.result}`." in documented[name]
    events = re.findall(r"^\| `([a-z_.]+)` \|", text.split("## Events", 1)[1].split("## Results", 1)[0], flags=re.M)
    assert events == list(api.EVENTS)
    results = dict(re.findall(r"^- `(\w+)`: (.+)$", text.split("## Results", 1)[1], flags=re.M))
    named = {t.strip("[]") for m in api.METHODS.values() for t in re.split(r"[ |]+|list\[", m.result) if t}
    assert set(results) == named
    for name, fields in results.items():
        assert re.findall(r"`(\w+)`", fields) == list(typing.get_type_hints(getattr(api, name))), name


@contextmanager
def server(data_dir: Path, methods: dict[str, Handler], events: Events | None = None) -> Iterator[None]:
    """The real control server with `methods`, in a trio loop on its own thread."""
    ready = threading.Event()
    held: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, socket_path(data_dir), methods, events or Events())
            held["token"], held["scope"] = trio.lowlevel.current_trio_token(), nursery.cancel_scope
            ready.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        trio.from_thread.run_sync(held["scope"].cancel, trio_token=held["token"])
        thread.join(10)


async def _status(params: dict[str, Any]) -> dict[str, Any]:
    return {"api_version": api.API_VERSION}


def raw(data_dir: Path, payload: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(socket_path(data_dir)))
        sock.sendall(payload)
        reader = sock.makefile("rb")
        answer: dict[str, Any] = json.loads(reader.readline())
        return answer


def test_requests_the_declarations_refuse_are_one_sentence_each_before_anything_runs(tmp_path: Path) -> None:
    ran: list[dict[str, Any]] = []

    async def job(params: dict[str, Any]) -> dict[str, Any]:
        ran.append(params)
        return {"id": params["id"]}

    def call(method: str, params: Any) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        error: dict[str, Any] = raw(tmp_path, json.dumps(request).encode() + b"\n")["error"]
        return error

    with server(tmp_path, {"status": _status, "job": job}):
        cases = [
            (("nonsense", {}), (api.UNKNOWN_METHOD, "no method 'nonsense'")),
            (("prove", {"datanet": "ward"}), (api.UNKNOWN_METHOD, "no method 'prove'")),  # declared, not served here
            (("job", {}), (api.INVALID_PARAMS, "needs the parameter 'id'")),
            (("job", {"id": "j1", "force": True}), (api.INVALID_PARAMS, "takes no parameter 'force'")),
            (("job", {"id": 5}), (api.INVALID_PARAMS, "'id' must be a JSON str")),
            (("job", {"id": None}), (api.INVALID_PARAMS, "needs the parameter 'id'")),
        ]
        for (method, params), (code, words) in cases:
            error = call(method, params)
            assert (error["code"], words in error["message"]) == (code, True), (method, params, error)
            assert error["message"].endswith(".") and "\n" not in error["message"]
        not_an_object = call("job", ["j1"])
        assert not_an_object == {"code": api.INVALID_PARAMS, "message": "The params of a request must be an object."}
        assert raw(tmp_path, b"{not json\n")["error"]["code"] == api.PARSE_ERROR
        assert raw(tmp_path, b'{"id": 1, "method": "job"}\n')["error"]["code"] == api.INVALID_REQUEST
        too_big = raw(tmp_path, b'{"jsonrpc": "2.0", "method": "job", "params": {"id": "' + b"x" * MAX_REQUEST)
        assert too_big["error"] == {
            "code": api.INVALID_REQUEST,
            "message": "The request is over the control API's 1 MiB limit; nothing was done.",
        }
    assert ran == []


def test_bool_is_not_an_int_and_an_int_is_a_float() -> None:
    train = api.METHODS["train"]
    with pytest.raises(api.InvalidParams, match="'epochs' must be a JSON int"):
        api.check_params(train, {"datanet": "ward", "epochs": True})
    assert api.check_params(train, {"datanet": "ward", "learning_rate": 1, "base": None}) == {
        "datanet": "ward",
        "learning_rate": 1,
    }


def test_a_methods_error_carries_its_sentence_and_exit_code_and_a_bug_stays_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Locked(ClientError):
        exit_code = failures.EXIT_LOCKED

    async def job(params: dict[str, Any]) -> dict[str, Any]:
        if params["id"] == "locked":
            raise Locked("The vault is locked; unlock it with `datanet node run`.")
        raise ZeroDivisionError("a secret-looking detail")

    with server(tmp_path, {"status": _status, "job": job}):
        client = ControlClient(tmp_path)
        with pytest.raises(RemoteError) as known:
            client.call("job", id="locked")
        assert (known.value.exit_code, str(known.value)) == (
            3,
            "The vault is locked; unlock it with `datanet node run`.",
        )
        with pytest.raises(RemoteError) as bug:
            client.call("job", id="other")
    assert bug.value.exit_code == failures.EXIT_ERROR
    assert str(bug.value) == "Unexpected error (ZeroDivisionError); details are in the node's log."
    assert "a secret-looking detail" in caplog.text  # the traceback went to the log, not to the client


def test_a_node_of_another_api_version_and_no_node_are_one_sentence_with_exit_code_7(tmp_path: Path) -> None:
    async def old_status(params: dict[str, Any]) -> dict[str, Any]:
        return {"peer_id": "12D3KooWold"}  # the first wave's node: no api_version

    with server(tmp_path, {"status": old_status}), pytest.raises(NodeError) as mismatch:
        ControlClient(tmp_path).call("jobs")
    assert mismatch.value.exit_code == failures.EXIT_NODE
    assert "speaks control API version 1, and this datanet speaks 5" in str(mismatch.value)
    with pytest.raises(NodeError, match="No node is running") as missing:
        ControlClient(tmp_path).call("status")
    assert missing.value.exit_code == failures.EXIT_NODE


def test_a_node_that_dies_mid_call_is_one_sentence(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path(tmp_path)))
    listener.listen(1)

    def die_on_first_request() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.close()  # as a node killed after it read the request

    thread = threading.Thread(target=die_on_first_request)
    thread.start()
    try:
        with pytest.raises(NodeError, match="closed the control connection before answering") as gone:
            ControlClient(tmp_path, timeout=10).call("status")
    finally:
        thread.join(10)
        listener.close()
    assert gone.value.exit_code == failures.EXIT_NODE


def test_events_are_numbered_and_a_subscriber_that_fell_behind_is_told_how_many_it_missed() -> None:
    async def main() -> list[dict[str, Any]]:
        events = Events(queue=3)
        slow = events.subscribe()
        for n in range(5):  # the queue holds 3: events 4 and 5 are lost
            events.publish({"type": "job", "n": n})
        got = [slow.receive_nowait() for _ in range(3)]
        events.publish({"type": "job", "n": 5})  # room again: first the count of what it missed, then this
        got += [slow.receive_nowait() for _ in range(2)]
        return got

    got = trio.run(main)
    assert [e.get("n") for e in got] == [0, 1, 2, None, 5]
    assert [e["seq"] for e in got] == [1, 2, 3, 6, 6]
    assert {k: v for k, v in got[3].items() if k != "at"} == {"type": "missed", "count": 2, "seq": 6}
    assert got[3]["at"] == got[4]["at"] >= got[0]["at"]


def test_the_asyncio_client_calls_checks_the_version_carries_errors_and_streams_events(tmp_path: Path) -> None:
    """The TUI's client (asyncio) against the real server: the same answers, sentences and exit codes as the
    blocking one, and the event stream with its sequence numbers."""
    import asyncio

    from client.node.async_client import AsyncControlClient

    events = Events()

    async def job(params: dict[str, Any]) -> dict[str, Any]:
        if params["id"] == "gone":
            raise ClientError("No job gone; `datanet jobs` lists them.")
        events.publish({"type": "job", "id": params["id"], "state": "done"})
        return {"id": params["id"]}

    async def main() -> tuple[Any, ...]:
        client = AsyncControlClient(tmp_path)
        status = await client.status()
        subscribed = asyncio.Event()
        stream = client.events(on_subscribed=subscribed.set)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.wait_for(subscribed.wait(), 10)  # the subscription stands before the event is published
        answer = await client.call("job", id="j1")
        event = await asyncio.wait_for(first, 10)
        await stream.aclose()
        with pytest.raises(RemoteError) as failed:
            await client.call("job", id="gone")
        with pytest.raises(NodeError, match="No node is listening"):
            await AsyncControlClient(tmp_path / "elsewhere").call("status")
        return status, answer, event, failed.value

    with server(tmp_path, {"status": _status, "job": job}, events):
        status, answer, event, failed = asyncio.run(main())
    assert status == {"api_version": api.API_VERSION} and answer == {"id": "j1"}
    assert (event["type"], event["id"], event["state"], event["seq"]) == ("job", "j1", "done", 1)
    assert (str(failed), failed.exit_code) == ("No job gone; `datanet jobs` lists them.", failures.EXIT_ERROR)


def test_the_asyncio_client_refuses_a_node_of_another_version(tmp_path: Path) -> None:
    import asyncio

    from client.node.async_client import AsyncControlClient

    async def old_status(params: dict[str, Any]) -> dict[str, Any]:
        return {"peer_id": "12D3KooWold"}

    with server(tmp_path, {"status": old_status}), pytest.raises(NodeError) as mismatch:
        asyncio.run(AsyncControlClient(socket=socket_path(tmp_path)).call("jobs"))
    assert f"this datanet speaks {api.API_VERSION}" in str(mismatch.value)
