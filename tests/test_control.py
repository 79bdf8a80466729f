"""The control API's waiting, against the real server on a real Unix socket (a trio thread): a condition is
checked once subscribed and again on each matching event, never on a timer; a timeout is one sentence."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from client.errors import ClientError
from client.node.api import API_VERSION
from client.node.control import ControlClient, Events, serve, socket_path


@dataclass
class Server:
    publish: Callable[..., None]  # (event, **changes to job j1), run in the server's trio thread
    stop: Callable[[], None]


@contextmanager
def control_server(data_dir: Path) -> Iterator[Server]:
    job: dict[str, Any] = {"id": "j1", "kind": "prove", "state": "running", "progress": {}, "error": None}
    events = Events()
    ready = threading.Event()
    held: dict[str, Any] = {}

    async def job_method(params: dict[str, Any]) -> dict[str, Any]:
        if params["id"] != job["id"]:
            raise ClientError(f"There is no job {params['id']}.")
        return dict(job)

    async def status_method(params: dict[str, Any]) -> dict[str, Any]:
        return {"api_version": API_VERSION}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            methods = {"job": job_method, "status": status_method}
            await nursery.start(serve, socket_path(data_dir), methods, events)
            held["token"], held["scope"] = trio.lowlevel.current_trio_token(), nursery.cancel_scope
            ready.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10)

    def publish(event: dict[str, Any], **job_changes: Any) -> None:
        def apply() -> None:
            job.update(job_changes)
            events.publish(event)

        trio.from_thread.run_sync(apply, trio_token=held["token"])

    def stop() -> None:
        if thread.is_alive():
            trio.from_thread.run_sync(held["scope"].cancel, trio_token=held["token"])
            thread.join(10)

    try:
        yield Server(publish, stop)
    finally:
        stop()


def test_a_condition_is_checked_once_subscribed_then_on_each_matching_event(tmp_path: Path) -> None:
    with control_server(tmp_path) as server:
        publish = server.publish
        client = ControlClient(tmp_path)
        seen: list[dict[str, Any] | None] = []

        def done(event: dict[str, Any] | None) -> bool:
            seen.append(event)
            if event is None:  # subscribed: whatever happens now arrives as an event
                publish({"type": "sync.progress"})
                publish({"type": "job", "id": "j1", "state": "running"})
                publish({"type": "job", "id": "j1", "state": "done"}, state="done")
                return False
            return bool(event["state"] == "done")

        assert client.wait(done, timeout=10, on=("job",))
        assert client.job("j1")["state"] == "done"
        stamped = [e and {k: v for k, v in e.items() if k != "at"} for e in seen]
        assert stamped == [  # numbered as published: the sync.progress event (2) did not match `on`
            None,
            {"type": "job", "id": "j1", "state": "running", "seq": 2},
            {"type": "job", "id": "j1", "state": "done", "seq": 3},
        ]
        assert all(e is None or abs(e["at"] - time.time()) < 60 for e in seen)


def test_wait_job_returns_the_ended_job_and_a_timeout_is_one_sentence(tmp_path: Path) -> None:
    with control_server(tmp_path) as server:
        publish = server.publish
        client = ControlClient(tmp_path)
        assert not client.wait(lambda _: False, timeout=0.3)
        with pytest.raises(ClientError, match=r"^Job j1 has not finished after 0.3 s; it goes on in the node"):
            client.wait_job("j1", timeout=0.3)
        publish({"type": "job", "id": "j1", "state": "failed"}, state="failed", error="The shard is locked.")
        ended = client.wait_job("j1", timeout=10)  # already ended: answered at once
        assert (ended["state"], ended["error"]) == ("failed", "The shard is locked.")
        with pytest.raises(ClientError, match="There is no job nope"):
            client.wait_job("nope", timeout=5)


def test_a_node_that_stops_ends_the_wait_with_one_sentence(tmp_path: Path) -> None:
    with control_server(tmp_path) as server:

        def stop_it(event: dict[str, Any] | None) -> bool:
            server.stop()  # the node goes away while the client waits
            return False

        with pytest.raises(ClientError, match=r"^The node stopped while this command waited for it\.$"):
            ControlClient(tmp_path).wait(stop_it, timeout=30)
