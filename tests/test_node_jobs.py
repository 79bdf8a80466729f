"""The node as the one owner of a data directory's work (real `datanet node run` processes, real vaults, libp2p
on 127.0.0.1): a second node for the same directory is refused in one sentence and leaves the first untouched;
`node stop` stops it cleanly; jobs run in lanes, so a sync finishes while a training run goes on (the events show
it); every kind of job can be cancelled, queued or running, and cancelling one that ended is one sentence."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.identity import Identity
from client.node import api, instance
from client.node.control import ControlClient, RemoteError, socket_path
from client.p2p.host import new_secure_host
from tests.conftest import Result
from tests.test_node import PASSPHRASE, jsonl, nodes


def test_a_second_node_is_refused_and_the_first_keeps_its_socket_and_journal(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.start()
        before = a.control().jobs()
        second = a.cli.run("node", "run", "--listen", "/ip4/127.0.0.1/tcp/0", timeout=60)
        assert second.code == 7
        assert second.stderr.strip() == (
            f"datanet: A node is already running for {a.cli.data_dir} (pid {a.proc.pid if a.proc else '?'}); "
            "use it, or stop it with `datanet node stop` first."
        )
        assert a.control().status()["api_version"] == api.API_VERSION  # its socket was not unlinked
        assert a.control().jobs() == before

        stopped = a.cli.ok("node", "stop")
        assert "Node stopped" in stopped.stdout
        assert a.proc is not None and a.proc.wait(timeout=30) == 0
        a.proc.communicate()
        a.proc = None
        again = a.cli.ok("node", "stop")
        assert again.stdout.strip() == f"No node was running for {a.cli.data_dir}."


def collect(
    client: ControlClient, until: Any, timeout: float, start: Callable[[], object] = lambda: None
) -> list[dict[str, Any]]:
    """The events the node publishes until `until(event)` holds (a stream, not a poll); `start` runs once the
    subscription stands, so no event it causes is missed."""
    seen: list[dict[str, Any]] = []

    def condition(event: dict[str, Any] | None) -> bool:
        if event is None:
            start()
            return False
        seen.append(event)
        return bool(until(event))

    assert client.wait(condition, timeout=timeout), seen[-5:]
    return seen


def test_a_sync_finishes_while_training_runs_and_every_kind_of_job_can_be_cancelled(tmp_path: Path) -> None:
    with nodes(tmp_path, 2) as (a, b):
        a.cli.env["DATANET_CACHE_DIR"] = str(tmp_path / "cache")
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(16 * 20))))
        b.cli.ok("import", "ward", str(jsonl(tmp_path / "b.jsonl", range(5000, 5600))))
        a.start()
        b.start()
        control = a.control()

        # Training in the heavy lane, long enough to outlast everything below.
        train = a.cli.ok("--json", "train", "ward", "--background", "--base", "tiny-classifier", "--epochs", "500")
        train_id = train.json()["id"]
        first = collect(control, lambda e: e["type"] == "train.progress" and e["id"] == train_id, 300)[-1]

        # A prove job queued behind it in the same lane, cancelled before it ever ran.
        queued = a.cli.ok("--json", "prove", "ward", "--background").json()["id"]
        assert control.job(queued)["state"] == "queued"
        cancelled = a.cli.ok("--json", "jobs", "--cancel", queued).json()
        assert cancelled["state"] == "cancelled"

        # A sync in the network lane, at the same time: it ends while the training still runs.
        outcome: list[Result] = []
        syncing = threading.Thread(target=lambda: outcome.append(a.cli.run("sync", "ward", "--peer", b.address)))
        events: list[dict[str, Any]] = []
        try:
            syncing.start()
            events = collect(
                control,
                lambda e: e["type"] == "job" and e.get("kind") == "sync" and "error" not in e and e["state"] == "done",
                120,
            )
        finally:
            syncing.join(120)
        assert outcome and outcome[0].code == 0, outcome[0].stderr if outcome else "no sync"
        assert control.job(train_id)["state"] == "running"
        assert not [e for e in events if e["type"] == "job" and e["id"] == train_id and e["state"] != "running"]
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs)
        # It kept training: a later step than before the sync (a step may outlast a quick sync on a busy machine,
        # so this waits for the next one rather than asking for one inside the sync's window).
        later = collect(control, lambda e: e["type"] == "train.progress" and e["id"] == train_id, 300)[-1]
        assert later["step"] > first["step"]

        # Cancel the running training: it stops at its next step, and stays cancelled.
        assert a.cli.ok("--json", "jobs", "--cancel", train_id).json()["state"] == "cancelled"

        # A running prove, cancelled between batches: what it stored stays, the rest is pending.
        prove = a.cli.ok("--json", "prove", "ward", "--background").json()["id"]
        collect(control, lambda e: e["type"] == "prove.progress" and e["id"] == prove, 300)
        assert a.cli.ok("--json", "jobs", "--cancel", prove).json()["state"] == "cancelled"
        doc = a.cli.ok("--json", "batches", "ward").json()
        assert 0 < len(doc["batches"]) < 20 and doc["pending"] > 0

        # A running sync with a peer that never speaks: cancelled while it waits.
        silent = socket.create_server(("127.0.0.1", 0))
        try:
            nobody = str(new_secure_host(Identity.generate()).get_id())  # a member not connected: it is dialled
            a.cli.ok("members", "ward", "add", nobody)
            address = f"/ip4/127.0.0.1/tcp/{silent.getsockname()[1]}/p2p/{nobody}"
            stuck: list[str] = []
            collect(
                control,
                lambda e: e["type"] == "job" and e["id"] in stuck and e["state"] == "running",
                60,
                start=lambda: stuck.append(control.sync("ward", address)["id"]),
            )
            assert control.cancel(stuck[0])["state"] == "cancelled"
        finally:
            silent.close()

        ended = a.cli.run("jobs", "--cancel", prove)
        assert ended.code == 1
        assert (
            ended.stderr.strip()
            == f"datanet: Job {prove} (prove) already ended (cancelled); there is nothing to cancel."
        )
        unknown = a.cli.run("jobs", "--cancel", "0123456789abcdef")
        assert unknown.code == 1 and "There is no job '0123456789abcdef' here" in unknown.stderr


def test_every_declared_method_answers_on_a_real_node(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(40))))
        a.start()
        control = a.control()
        queued = control.prove("ward")
        record = control.call("records.list", datanet="ward", limit=1)["records"][0]["id"]
        more = jsonl(tmp_path / "more.jsonl", range(40, 45))
        samples: dict[str, dict[str, Any]] = {  # a valid request of each method; a new method needs one here
            "status": {},
            "health": {"disk_free_mb": 1},
            "identity": {},
            "vault": {},
            "datanets": {},
            "create": {"datanet": "second", "task": "text"},
            "records.count": {"datanet": "ward"},
            "records.list": {"datanet": "ward", "limit": 5, "offset": 1},
            "records.show": {"datanet": "ward", "id": record[:12]},
            "records.delete": {"datanet": "ward", "ids": [record]},
            "records.import": {"datanet": "ward", "paths": [str(more)], "wait": True},
            "members": {"datanet": "ward"},
            "batches": {"datanet": "ward"},
            "batches.received": {"datanet": "ward"},
            "chain.status": {},
            "chain.datanets": {},
            "chain.fund": {"ether": 1},
            "chain.deploy": {},  # the devnet deploys by itself: an answer that says so
            "chain.reset": {},
            "join": {"datanet": "ward"},  # not on chain: an answer that says so
            "leave": {"datanet": "ward"},
            "allow": {"datanet": "ward", "account": "0x" + "11" * 20},
            "prove": {"datanet": "ward", "workers": 1},
            "submit": {"datanet": "ward"},  # queued: the job fails later (the shard is not bound)
            "train": {"datanet": "ward", "base": "tiny-classifier", "epochs": 1},
            "adapters.list": {},
            "adapters.show": {"id": "00000000"},
            "adapters.register": {"id": "00000000"},
            "adapters.share": {"id": "00000000"},  # no such adapter: an answer that says so
            "adapters.fetch": {"id": "ab" * 32, "peer": "nowhere"},  # not a peer address: an answer that says so
            "federation.serve": {"datanet": "ward", "members": 2},  # queued: the job fails later (no labels)
            "federation.join": {"datanet": "ward", "coordinator": "nowhere"},  # not a peer address
            "federation.leave": {},
            "federation.status": {},
            "federation.fit": {  # no federation joined: an answer that says so
                "federation": "0123456789abcdef",
                "round": 1,
                "weights": "/nonexistent",
                "names": ["a"],
                "labels": ["x", "y"],
                "a_sha256": "00" * 32,
                "base": "tiny-classifier",
            },
            "gov.status": {},
            "gov.delegate": {},
            "gov.propose": {"parameter": "challenge-period", "value": 86400, "description": "a day"},
            "gov.list": {},
            "gov.show": {"id": 1},
            "gov.vote": {"id": 1, "support": "for"},
            "gov.queue": {"id": 1},  # still voting: an answer that says so
            "gov.execute": {"id": 1},
            "poll.create": {"datanet": "ward", "question": "?", "options": ["a", "b"], "closes_in": 3600},
            "poll.list": {},
            "poll.show": {"id": 1},  # the poll above was refused (not on chain): an answer that says so
            "poll.enrolment": {"datanet": "ward", "open": True},
            "poll.enrol": {"datanet": "ward"},
            "poll.vote": {"id": 1, "option": "a"},
            "jobs": {"limit": 5},
            "job": {"id": queued["id"]},
            "cancel": {"id": queued["id"]},
            "peers": {},
            "sync": {"datanet": "ward"},  # no member is connected: an answer that says so
            "log.tail": {"lines": 10, "level": "INFO"},
            "stop": {},
            "subscribe": {},
        }
        answers: dict[str, str] = {}
        for name, method in api.METHODS.items():
            if name == "subscribe":  # the raw call: the connection turns into an event stream after it
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(30)
                    sock.connect(str(socket_path(a.cli.data_dir)))
                    sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}\n')
                    reply = json.loads(sock.makefile("rb").readline())
                answers[name] = "result" if reply.get("result") == {"subscribed": True} else str(reply)
                continue
            try:
                control.call(name, **samples[method.name])
                answers[name] = "result"
            except RemoteError as exc:  # it ran and said why not, in one sentence
                plain = str(exc).endswith(".") and "Unexpected error" not in str(exc)
                answers[name] = "error" if plain else str(exc)
        assert set(samples) == set(api.METHODS) == set(answers)
        assert set(answers.values()) <= {"result", "error"}, answers
        assert answers["sync"] == "error" and answers["stop"] == "result"
        assert answers["records.import"] == answers["records.show"] == answers["chain.status"] == "result"
        assert answers["gov.propose"] == answers["gov.vote"] == answers["gov.list"] == "result"
        assert answers["federation.serve"] == answers["federation.status"] == "result"
        assert answers["federation.fit"] == answers["adapters.fetch"] == "error"
        assert a.proc is not None and a.proc.wait(timeout=60) == 0  # `stop` stopped it cleanly
        a.proc.communicate()
        a.proc = None


def test_a_command_without_a_node_starts_one_offline_in_the_background_with_no_secret_in_sight(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("node", "stop")  # the one `create` started
        del a.cli.env["DATANET_NODE_NICE"]  # the node's own default priority (the suite's nodes run at 0)
        status = a.cli.ok("--json", "status").json()  # no node ran: the CLI started one, detached, and asked it
        assert status["addresses"] == [] and status["api_version"] == api.API_VERSION  # offline: no port
        pid = instance.recorded_pid(a.cli.data_dir)
        assert pid is not None
        assert os.getpriority(os.PRIO_PROCESS, pid) == 10  # background work: below the user's programs
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"--background" in cmdline
            assert PASSPHRASE.encode() not in cmdline and PASSPHRASE.encode() not in environ
            assert b"DATANET_PASSPHRASE=" not in environ
            again = a.cli.ok("--json", "jobs").json()  # the next command attaches to the same node
            assert again == [] and instance.recorded_pid(a.cli.data_dir) == pid
            assert "Node stopped" in a.cli.ok("node", "stop").stdout
            assert instance.wait_exit(pid, 30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_node_with_an_idle_exit_stops_by_itself_once_nothing_happens(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.start("--idle-exit", "2")
        assert a.control().status()["api_version"] == api.API_VERSION  # a request: the idle time starts again
        assert a.proc is not None and a.proc.wait(timeout=60) == 0
        a.proc.communicate()
        a.proc = None


def test_a_node_that_cannot_unlock_is_the_commands_one_sentence_and_exit_code(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("node", "stop")  # the node `create` started: the next command starts one, which cannot unlock
        wrong = a.cli.run("status", env={"DATANET_PASSPHRASE": "not the passphrase at all"})
        assert wrong.code == 3, wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1 and "passphrase" in wrong.stderr.lower()
        assert "not the passphrase at all" not in wrong.stderr
        assert not a.control().running()  # no node was left behind


def test_a_node_that_ends_its_output_before_it_exits_is_reported_by_its_exit_code_not_as_a_timeout() -> None:
    # The CI failure this pins: the node's output pipe ends a moment before its process can be reaped, and the
    # command said "not ready after 60 s" at once instead of the node's own sentence and exit code.
    from client.cli import attach

    out_r, out_w = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-c", "import os, time; os.close(1); time.sleep(0.5); raise SystemExit(3)"],
        stdout=out_w,
    )
    os.close(out_w)
    try:
        assert attach._read_line(out_r, 30) == ""  # the pipe ended, well before the time ran out
        assert os.waitpid(child.pid, os.WNOHANG) == (0, 0)  # ...and the process had not exited yet
        status = attach._exit_status(child.pid, 30)
        assert status is not None and os.waitstatus_to_exitcode(status) == 3
        child.returncode = 3  # reaped above
    finally:
        os.close(out_r)
        if child.returncode is None:
            child.kill()
            child.wait()
