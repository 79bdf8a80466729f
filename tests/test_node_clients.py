"""The CLI as the node's client (real `datanet` processes, real nodes, real vaults): every write goes through the
data directory's one node, started in the background when none runs; `node run` takes over from that node; a
SIGKILLed node is replaced at the next command, its interrupted jobs resumed or failed, never left running; a
command that follows a job cancels it on Ctrl-C; a chain command refuses a node on another chain; `vault rekey`
stops a background node and refuses a `node run` one; the control front answers status and counts while the node
itself is stopped, and leaves with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from client.node import instance
from client.node.control import ControlClient, NodeError, RemoteError
from tests.conftest import REPO
from tests.test_node import jsonl, nodes


def test_writes_go_through_the_node_and_node_run_takes_over_from_the_background_one(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        background = instance.recorded_pid(a.cli.data_dir)  # `create` started it
        assert background is not None and ControlClient(a.cli.data_dir).status()["online"] is False
        imported = a.cli.ok("--json", "import", "ward", str(jsonl(tmp_path / "a.jsonl", range(30)))).json()
        assert imported["records"] == 30 and imported["imported"][0]["added"] == 30
        jobs = a.cli.ok("--json", "jobs").json()
        assert [(j["kind"], j["state"]) for j in jobs] == [("import", "done")]  # the node did the import
        assert instance.recorded_pid(a.cli.data_dir) == background  # and it is the same node

        a.start()  # `datanet node run`: the background node hands over and stops
        assert instance.wait_exit(background, 30)
        assert a.control().status()["online"] is True and instance.recorded_pid(a.cli.data_dir) == a.proc.pid  # type: ignore[union-attr]
        record = a.cli.ok("--json", "records", "ward", "list", "--limit", "1").json()["records"][0]["id"]
        seen = []

        def deleted(event: dict[str, object] | None) -> bool:
            if event is None:
                a.cli.ok("records", "ward", "delete", record)
                return False
            seen.append(event)
            return event.get("type") == "records.changed"

        assert a.control().wait(deleted, timeout=30)  # the online node deleted it, and said so
        assert seen[-1]["count"] == -1 and a.cli.ok("--json", "records", "ward", "count").json()["records"] == 29


def test_a_killed_node_is_replaced_by_the_next_command_and_its_jobs_resume_or_fail(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(64))))
        queued = a.cli.ok("--json", "prove", "ward", "--background", "--jobs", "1").json()
        killed = instance.recorded_pid(a.cli.data_dir)
        assert killed is not None
        os.killpg(killed, signal.SIGKILL)  # the node and its control front at once, as a power cut would
        assert instance.wait_exit(killed, 30)
        assert (a.cli.data_dir / "node.sock").exists()  # the dead front's socket is still there
        done = a.cli.ok("--json", "jobs", "--wait", queued["id"], "--timeout", "300").json()
        assert done["state"] == "done"  # a new node started, resumed the prove job and finished it
        assert instance.recorded_pid(a.cli.data_dir) not in (None, killed)
        batches = a.cli.ok("--json", "batches", "ward").json()
        assert batches["pending"] == 0 and sum(b["count"] for b in batches["batches"]) == 64
        assert all(j["state"] in ("done", "failed") for j in a.cli.ok("--json", "jobs").json())


def test_ctrl_c_on_a_command_that_follows_a_job_cancels_the_job(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(16 * 12))))
        control = ControlClient(a.cli.data_dir)
        proving: list[subprocess.Popen[str]] = []

        def started(event: dict[str, Any] | None) -> bool:
            if event is None:
                proving.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "client.cli.main", "prove", "ward", "--jobs", "1"],
                        env=a.cli.env,
                        cwd=REPO,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
                return False
            if event.get("type") != "prove.progress":
                return False
            assert event["batches_done"] >= 1 and event["batches"] == 12  # with the pace of the job so far
            assert event["rate"] > 0 and event["eta_s"] is not None and event["eta_s"] >= 0
            return True

        try:
            assert control.wait(started, timeout=120)  # its first batch is stored
            proving[0].send_signal(signal.SIGINT)
            _, err = proving[0].communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proving[0].kill()
        job = control.jobs(limit=1)[0]
        assert proving[0].returncode == 130, err
        assert err.strip() == f"datanet: Job {job['id']} (prove) was cancelled; what it had done stays."
        assert (job["kind"], job["state"]) == ("prove", "cancelled")
        kept = a.cli.ok("--json", "batches", "ward").json()
        assert 1 <= len(kept["batches"]) < 12  # what it proved before the cancel stays


def test_a_chain_command_replaces_an_idle_background_node_and_refuses_a_node_run_one_on_another_chain(
    tmp_path: Path,
) -> None:
    with nodes(tmp_path, 1) as (a,):
        devnet = instance.recorded_pid(a.cli.data_dir)  # the background node `create` started, on the devnet
        assert devnet is not None
        elsewhere = a.cli.run("--rpc-url", "http://127.0.0.1:9", "chain", "status")
        assert elsewhere.code == 6 and "Cannot reach the chain" in elsewhere.stderr  # asked by a new node
        assert instance.wait_exit(devnet, 5)
        assert ControlClient(a.cli.data_dir).status()["chain"] == "http://127.0.0.1:9"

        a.start()  # `node run`, on the devnet: someone's node, not replaced
        refused = a.cli.run("--rpc-url", "http://127.0.0.1:9", "chain", "status")
        assert refused.code == 7
        assert refused.stderr.strip() == (
            f"datanet: The node running for {a.cli.data_dir} uses the embedded devnet, not http://127.0.0.1:9; stop "
            "it (`datanet node stop`) to use another chain."
        )


def test_rekey_stops_a_background_node_and_refuses_a_node_run_one(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(10))))
        background = instance.recorded_pid(a.cli.data_dir)
        assert background is not None
        a.cli.ok("vault", "rekey", "ward")
        assert instance.wait_exit(background, 5)  # stopped before the shard was rewritten
        assert a.cli.ok("--json", "records", "ward", "count").json()["records"] == 10

        a.start()
        refused = a.cli.run("vault", "rekey", "ward")
        assert refused.code == 7
        assert "stop it with `datanet node stop` first" in refused.stderr
        assert a.control().status()["online"] is True


def test_the_nodes_log_is_read_by_level_area_and_text(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("chain", "status")  # the first chain use deploys the devnet's contracts, and logs it
        control = a.control()
        every = control.call("log.tail", lines=1000, level="DEBUG")["lines"]
        chain = control.call("log.tail", lines=1000, level="DEBUG", area="chain")["lines"]
        vault = control.call("log.tail", lines=1000, level="INFO", area="vault")["lines"]
        assert any("contracts deployed on the devnet" in line for line in chain)
        assert chain and all(" client.chain." in line for line in chain) and len(chain) < len(every)
        assert any("shard" in line and "created" in line for line in vault)
        assert all(" storage." in line for line in vault)
        found = control.call("log.tail", lines=1000, text="contracts deployed")["lines"]
        assert len(found) == 1 and "client.chain.session" in found[0]
        assert all(" INFO " not in line for line in control.call("log.tail", lines=1000, level="WARNING")["lines"])
        with pytest.raises(RemoteError, match="'radio' is not a log area"):
            control.call("log.tail", area="radio")


def test_health_says_what_is_wrong_with_its_exit_code(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("node", "stop")
        down = a.cli.run("health")  # a monitor never starts a node: a node that is down is the answer
        assert down.code == 7 and down.stderr.count("\n") == 1 and "Traceback" not in down.stderr
        a.start()  # online, and no peer at all
        healthy = a.cli.ok("--json", "health", "--disk-free-mb", "1").json()
        assert healthy["healthy"] and healthy["online"] and healthy["chain_block"] > 0
        alone = a.cli.run("health", "--no-peers-minutes", "0", "--disk-free-mb", "1")
        assert alone.code == 20 and "No peer has been connected" in alone.stdout
        full = a.cli.run("health", "--disk-free-mb", str(10**9))
        assert full.code == 22 and "MB are free where the data directory is" in full.stdout
        assert a.cli.run("submit", "ward").code != 0  # a failed job: the Datanet is on no chain
        failing = a.cli.run("--json", "health", "--disk-free-mb", "1")
        assert failing.code == 23 and failing.json()["problems"][0]["check"] == "jobs"
        a.stop()
        a.cli.env["DATANET_RPC_URL"] = "http://127.0.0.1:9"  # a chain nobody serves
        a.start()
        gone = a.cli.run("--json", "health", "--disk-free-mb", "1")
        checks = [p["check"] for p in gone.json()["problems"]]
        assert gone.code == 21 and checks[0] == "chain" and "cannot be reached" in gone.json()["problems"][0]["problem"]


def _front_of(data_dir: Path) -> int:
    """The pid of the data directory's control front (client/node/front.py)."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"client.node.front" in argv and str(data_dir).encode() in argv:
                return int(entry.name)
    raise AssertionError("no control front runs for " + str(data_dir))


def test_the_front_answers_while_the_node_is_stopped_is_restarted_if_it_dies_and_leaves_with_the_node(
    tmp_path: Path,
) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(40))))
        a.start()
        assert a.proc is not None
        front = _front_of(a.cli.data_dir)
        # A status asked after an event is the status after it: the node writes it to the front first.
        job = a.cli.ok("--json", "prove", "ward", "--background", "--jobs", "1").json()["id"]
        assert a.control().wait_job(job, timeout=120)["state"] == "done"
        assert a.control().status()["jobs"] == {"queued": 0, "running": 0, "failed": 0}

        # The node's own socket answers the front's two methods too (the same ShardCounts behind both).
        for sock in ("node.sock", "api.sock"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
                raw.settimeout(10)
                raw.connect(str(a.cli.data_dir / sock))
                raw.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "records.count", "params": {"datanet": "ward"}}\n')
                assert json.loads(raw.makefile("rb").readline())["result"]["records"] == 40, sock

        os.kill(a.proc.pid, signal.SIGSTOP)  # the node itself answers nothing now
        try:
            client = ControlClient(a.cli.data_dir, timeout=5)
            status = client.status()
            assert status["peer_id"] == a.peer_id and status["online"] is True and status["datanets"] == 1
            assert client.call("records.count", datanet="ward")["records"] == 40
            with pytest.raises(NodeError, match=r"did not answer 'jobs' within 2 s"):
                client.call("jobs", timeout=2)  # spliced to the node, which is stopped
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        assert a.control().jobs()[0]["id"] == job

        # A client that half-closes its end after a request still gets the node's answer through the front.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.settimeout(10)
            raw.connect(str(a.cli.data_dir / "node.sock"))
            raw.sendall(b'{"jsonrpc": "2.0", "id": 7, "method": "jobs", "params": {}}\n')
            raw.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: raw.recv(65536), b""))
        assert json.loads(answer)["result"][0]["id"] == job

        # A front that dies (the OOM killer, a stray signal) is started again by the node, which goes on.
        os.kill(front, signal.SIGKILL)
        assert instance.wait_exit(front, 30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ControlClient(a.cli.data_dir).running():
            time.sleep(0.2)  # no event can say it: the socket is what comes back
        assert _front_of(a.cli.data_dir) != front and a.control().status()["peer_id"] == a.peer_id
        front = _front_of(a.cli.data_dir)

        a.proc.kill()  # the node alone: its front leaves with it, and takes its socket file along
        a.proc.communicate(timeout=30)
        a.proc = None
        assert instance.wait_exit(front, 30)
        assert not (a.cli.data_dir / "node.sock").exists()
        assert a.cli.ok("--json", "records", "ward", "count").json()["records"] == 40
