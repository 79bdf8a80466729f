"""Three real nodes (`datanet node run` processes, real vaults, libp2p on 127.0.0.1) driven through the CLI and the
control API: convergence, a node SIGKILLed in the middle of a sync that resumes from its journal and ends
identical, graceful stop, and the control socket's permissions."""

from __future__ import annotations

import json
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from client.node.control import ControlClient
from tests.conftest import REPO, Cli, clean_env

PASSPHRASE = "node tests passphrase"


@dataclass
class NodeProc:
    cli: Cli
    peer_id: str
    proc: subprocess.Popen[str] | None = None
    address: str = ""
    ready: dict[str, Any] = field(default_factory=dict)  # the line `node run --json` prints when it is ready

    def start(self, *extra: str, session: bool = False) -> None:
        """`node run` on 127.0.0.1; with `session`, as the leader of a process group of its own (with its
        children: what a crash harness kills at once, as a power cut would)."""
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "client.cli.main", "--json", "node", "run"),
                *("--listen", "/ip4/127.0.0.1/tcp/0", *extra),
            ],
            env=self.cli.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=session,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "no output"
        self.ready = json.loads(line)
        self.address = next(iter(self.ready["addresses"]), "")  # none yet for an outbound-only node

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.communicate(timeout=30)  # waits, and closes the pipes
        code = self.proc.returncode
        self.proc = None
        return code

    def ids(self) -> list[str]:
        doc = self.cli.ok("--json", "records", "ward", "list", "--limit", "1000000").json()
        return sorted(r["id"] for r in doc["records"])

    def control(self) -> ControlClient:
        return ControlClient(self.cli.data_dir)


def fetch(node: NodeProc) -> str:
    with urllib.request.urlopen(node.ready["metrics"], timeout=10) as answer:  # noqa: S310 (a loopback URL)
        return str(answer.read().decode())


def scrape(node: NodeProc) -> dict[str, float]:
    """The node's metrics as {name{labels}: value}."""
    samples = {}
    for line in fetch(node).splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def records(node: NodeProc, datanet: str = "ward") -> int:
    return next((d["records"] for d in node.control().datanets() if d["name"] == datanet), 0)


def wait_for_records(node: NodeProc, count: int, what: str, timeout: float) -> None:
    """Until the node holds `count` records, re-checked on each records or job event (no polling)."""
    reached = node.control().wait(lambda _: records(node) >= count, timeout=timeout, on=("records.received", "job"))
    assert reached, what


def make_node(tmp_path: Path, name: str, datanet: str = "ward") -> NodeProc:
    env = clean_env(tmp_path / name)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env["DATANET_PASSPHRASE"] = PASSPHRASE
    cli = Cli(tmp_path / name / "data", tmp_path / name / "config", env)
    cli.ok("create", datanet, "--task", "intent-classification")
    # By default the nodes of a test do not find each other or sync by themselves (tests that want it say so).
    cli.config_dir.mkdir(parents=True, exist_ok=True)
    (cli.config_dir / "config.toml").write_text("[node]\nmdns = false\nannounce_every = 3600\n")
    return NodeProc(cli, cli.ok("--json", "identity", "show").json()["peer_id"])


def jsonl(path: Path, numbers: range, pad: int = 100) -> Path:
    path.write_text(
        "".join(json.dumps({"text": f"note {n} " + "z" * pad, "label": f"l{n % 4}"}) + "\n" for n in numbers)
    )
    return path


@contextmanager
def nodes(tmp_path: Path, count: int) -> Iterator[list[NodeProc]]:
    made = [make_node(tmp_path, f"n{i}") for i in range(count)]
    for node in made:
        for other in made:
            if other is not node:
                node.cli.ok("members", "ward", "add", other.peer_id)
    try:
        yield made
    finally:
        for node in made:
            if node.proc is not None:
                node.proc.kill()
                node.proc.communicate(timeout=30)


def test_three_nodes_converge_through_their_control_apis(tmp_path: Path) -> None:
    with nodes(tmp_path, 3) as (a, b, c):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(0, 120))))
        b.cli.ok("import", "ward", str(jsonl(tmp_path / "b.jsonl", range(100, 200))))
        c.cli.ok("import", "ward", str(jsonl(tmp_path / "c.jsonl", range(180, 260))))
        for node in (a, b, c):
            node.start("--metrics", "127.0.0.1:0")
        socket_file = a.cli.data_dir / "node.sock"
        assert stat.S_IMODE(socket_file.stat().st_mode) == 0o600

        events: list[dict[str, object]] = []
        subscribed = threading.Event()

        def record(event: dict[str, object] | None) -> bool:
            if event is None:
                subscribed.set()
                return False
            events.append(event)
            return event.get("type") == "job" and event.get("state") == "done"

        listener = threading.Thread(target=lambda: a.control().wait(record, timeout=30), daemon=True)
        listener.start()
        assert subscribed.wait(timeout=10)
        first = a.cli.ok("--json", "sync", "ward", "--peer", b.address).json()
        assert (first["received"], first["sent"]) == (80, 100)
        listener.join(timeout=10)
        kinds = [e["type"] for e in events]
        assert "sync.progress" in kinds and kinds[-1] == "job"
        done = [e for e in events if e["type"] == "sync.progress" and e["phase"] == "done"]
        assert done and done[-1]["records_done"] == 80 and done[-1]["records_left"] == 0
        assert any(e["type"] == "records.received" and e["count"] == 80 for e in events)
        # The Prometheus endpoints: the dialling side's and the serving side's counts of that session.
        assert a.ready["metrics"].startswith("http://127.0.0.1:")
        client, server = scrape(a), scrape(b)
        assert client['datanet_sync_records_total{direction="received"}'] == 80
        assert client['datanet_sync_records_total{direction="sent"}'] == 100
        assert server['datanet_sync_records_total{direction="received"}'] == 100
        assert server['datanet_sync_sessions_total{side="server"}'] == 1
        assert client['datanet_sync_bytes_total{direction="received"}'] > 80 * 100
        assert (
            server['datanet_sync_bytes_total{direction="sent"}']
            == client['datanet_sync_bytes_total{direction="received"}']
        )
        assert client['datanet_jobs_finished_total{kind="sync",state="done"}'] == 1
        deadline = time.monotonic() + 10
        while scrape(a)["datanet_records"] != 200:  # the gauges follow within a second of the records' event
            assert time.monotonic() < deadline, scrape(a)
            time.sleep(0.2)
        exposed = fetch(a)
        assert "ward" not in exposed and "note 1" not in exposed  # no Datanet name, no record content
        b.cli.ok("sync", "ward", "--peer", c.address)
        c.cli.ok("sync", "ward", "--peer", a.address)
        a.cli.ok("sync", "ward", "--peer", c.address)
        assert len(a.ids()) == 260 and a.ids() == b.ids() == c.ids()

        status = a.cli.ok("--json", "status").json()
        assert status["peer_id"] == a.peer_id and status["jobs"]["failed"] == 0
        typed = a.control()
        assert typed.status()["peer_id"] == a.peer_id
        assert [(j["kind"], j["state"]) for j in typed.jobs()] == [
            ("sync", "done"),
            ("sync", "done"),
            ("import", "done"),
        ]
        assert {d["name"] for d in typed.datanets()} == {"ward"}
        peers = a.cli.ok("--json", "peers").json()
        assert {p["peer_id"] for p in peers} >= {b.peer_id, c.peer_id}
        jobs = a.cli.ok("--json", "jobs").json()
        assert [j["state"] for j in jobs] == ["done", "done", "done"]  # two syncs and the import
        missing = a.cli.run("jobs", "--wait", "no-such-job", "--timeout", "5")
        assert missing.code == 1 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr

        # through the node too, only a's own 120 records are ever proven: the 140 it received are not its own
        job = a.cli.ok("--json", "prove", "ward", "--background", "--jobs", "1").json()
        proved = a.control().wait_job(job["id"], timeout=180)
        assert proved["state"] == "done" and proved["progress"]["records"] == 120, proved
        assert proved["progress"]["pending"] == 0

        stopped = a.stop(signal.SIGTERM)  # graceful
        assert stopped == 0 and not socket_file.exists()
        gone = a.cli.ok("node", "stop")
        assert gone.stdout.strip() == f"No node was running for {a.cli.data_dir}."


def test_an_unauthorised_peer_gets_nothing_and_the_refusal_is_logged(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        stranger = make_node(tmp_path, "stranger")
        stranger.cli.ok("members", "ward", "add", a.peer_id)  # the stranger trusts a; a does not know it
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(10))))
        a.start()
        refused = stranger.cli.run("sync", "ward", "--peer", a.address)
        assert refused.code == 1 and "not a member" in refused.stderr
        assert stranger.ids() == []
        a.stop()
        log = (a.cli.data_dir / "logs" / "datanet.log").read_text()
        assert f"from peer {stranger.peer_id}: not a member" in log


def test_a_node_killed_mid_sync_resumes_from_its_journal_and_ends_identical(tmp_path: Path) -> None:
    with nodes(tmp_path, 2) as (a, b):
        # about 100 MB: a sync long enough to be killed in the middle of (records land in 16 MiB commits)
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(100_000), pad=900)))
        a.start()
        b.start()
        job = b.control().call("sync", datanet="ward", peer=a.address)
        arriving = b.control().wait(lambda _: records(b) > 0, timeout=60, on=("sync.progress",))
        assert arriving and b.control().job(job["id"])["state"] == "running"
        assert b.stop(signal.SIGKILL) == -signal.SIGKILL
        partial = b.cli.ok("--json", "records", "ward", "count").json()["records"]
        assert 0 < partial < 100_000, partial  # killed in the middle: what was committed stays

        b.start()  # the journal finds the job "running", queues it again, and it finishes
        assert b.control().wait_job(job["id"], timeout=120)["state"] == "done"
        assert b.ids() == a.ids()
        check = b.cli.run("vault", "check")
        assert check.code == 0, check.stderr


SOMEONE = "12D3KooWA1V5gjsY5a88qAtQSLmkmvvAN9kuJG3Z6sSuQZWsKhTR"


@pytest.mark.parametrize("peer", ["not-an-address", f"/ip4/127.0.0.1/tcp/1/p2p/{SOMEONE}"])
def test_a_bad_or_dead_peer_address_is_one_sentence(tmp_path: Path, peer: str) -> None:
    node = make_node(tmp_path, "solo")
    node.cli.ok("members", "ward", "add", SOMEONE)
    result = node.cli.run("sync", "ward", "--peer", peer)
    assert result.code == 1 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_members_are_checked_and_listed(tmp_path: Path) -> None:
    node = make_node(tmp_path, "solo")
    alone = node.cli.run("sync", "ward")
    assert alone.code == 1 and "--peer" in alone.stderr
    assert node.cli.run("members", "ward", "add", "bob").code == 1
    node.cli.ok("members", "ward", "add", node.peer_id)
    assert node.cli.ok("--json", "members", "ward").json()["members"] == [node.peer_id]
    node.cli.ok("members", "ward", "remove", node.peer_id)
    assert node.cli.ok("--json", "members", "ward").json()["members"] == []


def test_an_announcement_makes_a_member_sync_by_itself(tmp_path: Path) -> None:
    with nodes(tmp_path, 2) as (a, b):
        for node in (a, b):
            node.cli.config_dir.mkdir(parents=True, exist_ok=True)
            (node.cli.config_dir / "config.toml").write_text("[node]\nannounce_every = 0.5\nmdns = false\n")
        a.start()
        b.start("--bootstrap", a.address)  # b stays connected to a; nobody asks for a sync
        connected = b.control().wait(
            lambda _: any(p["peer_id"] == a.peer_id and p["connected"] for p in b.control().peers()),
            timeout=20,
            on=("peer.up",),
        )
        assert connected, "b never connected to its bootstrap peer"
        (seen,) = [p for p in b.cli.ok("--json", "peers").json() if p["peer_id"] == a.peer_id]
        assert seen["transport"] == "direct" and 0 <= seen["latency_ms"] < 1000

        a.cli.ok("import", "ward", str(jsonl(tmp_path / "new.jsonl", range(50))))  # while both nodes run
        wait_for_records(b, 50, "the announcement did not lead to a sync", timeout=60)
        assert b.ids() == a.ids()
        jobs = b.cli.ok("--json", "jobs").json()
        assert jobs and all(j["kind"] == "sync" and j["state"] in ("done", "queued", "running") for j in jobs)
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "more.jsonl", range(50, 53))))
        every = b.cli.ok("--json", "sync", "ward").json()  # no --peer: every connected member
        assert every["peers"] == 1 and b.ids() == a.ids() and len(b.ids()) == 53
        log = (b.cli.data_dir / "logs" / "datanet.log").read_text()
        assert "differs from ours: syncing" in log
        assert "note 7" not in log  # announcements and logs never carry record contents


def test_nodes_on_the_same_lan_find_each_other_with_mdns_and_sync(tmp_path: Path) -> None:
    with nodes(tmp_path, 2) as (a, b):
        for node in (a, b):
            node.cli.config_dir.mkdir(parents=True, exist_ok=True)
            (node.cli.config_dir / "config.toml").write_text("[node]\nannounce_every = 0.5\n")
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(30))))
        a.start("--mdns")
        b.start("--headless", "--mdns")  # a headless node has mDNS off unless asked for it
        wait_for_records(b, 30, "no sync after mDNS discovery", timeout=60)
        assert b.ids() == a.ids()
        peers = b.cli.ok("--json", "peers").json()
        assert any(p["peer_id"] == a.peer_id and p["transport"] == "direct" for p in peers)


def test_mdns_is_on_for_desktops_off_for_headless_nodes_and_configurable() -> None:
    from client.cli.node_commands import _mdns

    assert _mdns(None, None, headless=False) is True
    assert _mdns(None, None, headless=True) is False
    assert _mdns(None, True, headless=True) is True  # [node] mdns = true
    assert _mdns(False, True, headless=False) is False  # --no-mdns wins


def test_members_that_share_only_a_third_peer_find_each_other_and_sync(tmp_path: Path) -> None:
    with nodes(tmp_path, 2) as (a, c):
        hub = make_node(tmp_path, "hub", datanet="other")  # knows both; holds no "ward", relays no announcement
        try:
            for node in (a, c, hub):
                node.cli.config_dir.mkdir(parents=True, exist_ok=True)
                (node.cli.config_dir / "config.toml").write_text(
                    "[node]\nannounce_every = 0.5\ndiscover_every = 1\nmdns = false\n"
                )
            a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(25))))
            hub.start()
            a.start("--bootstrap", hub.address)
            c.start("--bootstrap", hub.address)
            wait_for_records(c, 25, "no sync through DHT discovery", timeout=90)
            assert c.ids() == a.ids()
            assert any(p["peer_id"] == a.peer_id and p["connected"] for p in c.cli.ok("--json", "peers").json())
        finally:
            if hub.proc is not None:
                hub.stop(signal.SIGKILL)


def test_members_on_a_shared_chain_sync_without_listing_each_other(tmp_path: Path) -> None:
    from client.chain.anvil import running_anvil

    with running_anvil() as anvil:
        a, b = make_node(tmp_path, "a"), make_node(tmp_path, "b")  # no vault members on either side
        accounts = {}
        for node in (a, b):
            node.cli.env["DATANET_RPC_URL"] = anvil.url
            (node.cli.config_dir / "config.toml").write_text(
                "[node]\nmdns = false\nannounce_every = 3600\nmembership_ttl = 0.5\n"
            )
            accounts[node.peer_id] = node.cli.ok("--json", "identity", "show").json()["evm_address"]
            anvil.w3.provider.make_request("anvil_setBalance", [accounts[node.peer_id], hex(10**19)])  # type: ignore[arg-type]
        a.cli.ok("chain", "deploy")
        deployments = b.cli.data_dir / "chain" / "deployments"
        deployments.mkdir(parents=True)
        for file in (a.cli.data_dir / "chain" / "deployments").iterdir():
            (deployments / file.name).write_bytes(file.read_bytes())
        a.cli.ok("create", "ward", "--on-chain", "--private")  # registers a's local Datanet: allow-list policy
        a.cli.ok("allow", "ward", accounts[b.peer_id])
        b.cli.ok("join", "ward")
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(20))))
        a.start()
        try:
            synced = b.cli.ok("--json", "sync", "ward", "--peer", a.address).json()
            assert synced["received"] == 20 and b.ids() == a.ids()

            a.cli.ok("allow", "ward", accounts[b.peer_id], "--remove")  # the owner ends b's membership on chain
            time.sleep(1.0)  # a's cached answer expires
            a.cli.ok("import", "ward", str(jsonl(tmp_path / "more.jsonl", range(100, 105))))
            refused = b.cli.run("sync", "ward", "--peer", a.address)
            assert refused.code == 1 and "not a member" in refused.stderr
            assert len(b.ids()) == 20
        finally:
            a.stop()
        log = (a.cli.data_dir / "logs" / "datanet.log").read_text()
        assert f"(chain account {accounts[b.peer_id]})" in log


def test_proving_and_training_run_as_node_jobs_and_a_killed_prove_resumes(tmp_path: Path) -> None:
    with nodes(tmp_path, 1) as (a,):
        a.cli.env["DATANET_CACHE_DIR"] = str(tmp_path / "cache")
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(16 * 24))))
        a.start()
        job = a.cli.ok("--json", "prove", "ward", "--background", "--jobs", "2").json()
        proved = a.control().wait(
            lambda _: a.control().job(job["id"])["progress"].get("batches_done", 0) >= 1,
            timeout=120,
            on=("prove.progress", "job"),
        )
        assert proved, "no batch proved"
        assert a.stop(signal.SIGKILL) == -signal.SIGKILL
        left = a.cli.ok("--json", "batches", "ward").json()
        assert 0 < len(left["batches"]) < 24  # killed in the middle; what was stored stays

        a.start()  # the journal queues the job again; it proves the rest
        assert a.control().wait_job(job["id"], timeout=180)["state"] == "done", "the prove job did not resume"
        doc = a.cli.ok("--json", "batches", "ward").json()
        assert len(doc["batches"]) == 24 and doc["pending"] == 0

        trained = a.cli.ok("--json", "train", "ward", "--background", "--base", "tiny-classifier", "--threads", "1")
        train_job = trained.json()["id"]
        waited = a.cli.run("--json", "jobs", "--wait", train_job, "--timeout", "300", timeout=320)  # as a script would
        finished = a.control().job(train_job)
        assert waited.code == 0 and finished["state"] == "done", finished["error"]
        assert waited.json()["id"] == train_job
        adapters = a.cli.ok("--json", "adapters", "list").json()["adapters"]
        assert len(adapters) == 1
        assert finished["progress"]["adapter_id"] in json.dumps(adapters)
        jobs = a.cli.ok("--json", "jobs").json()
        assert {j["kind"] for j in jobs} == {"import", "prove", "train"} and all(j["state"] == "done" for j in jobs)


def test_a_sync_stops_before_the_disk_fills_and_a_reloaded_limit_lets_it_through(tmp_path: Path) -> None:
    """`[limits] min_free_mb` above what is free: the receiving side's sync job fails in one sentence and keeps
    nothing; the limit lowered and the node sent SIGHUP, the same sync goes through."""
    with nodes(tmp_path, 2) as (a, b):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(300))))
        free_mb = shutil.disk_usage(tmp_path).free // 2**20
        config = b.cli.config_dir / "config.toml"
        config.write_text(config.read_text() + f"[limits]\nmin_free_mb = {free_mb + 100_000}\n")
        a.start()
        b.start()
        refused = b.cli.run("--json", "sync", "ward", "--peer", a.address)
        assert refused.code == 8, refused.stdout + refused.stderr
        assert "Stopped before the disk filled" in refused.stderr and "min_free_mb" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert records(b) == 0

        config.write_text(config.read_text().replace(f"min_free_mb = {free_mb + 100_000}", "min_free_mb = 1"))
        assert b.proc is not None
        reloaded: list[dict[str, object]] = []

        def seen(event: dict[str, object] | None) -> bool:
            if event is None:  # subscribed: now the signal cannot be missed
                assert b.proc is not None
                b.proc.send_signal(signal.SIGHUP)
                return False
            reloaded.append(event)
            return True

        assert b.control().wait(seen, timeout=30, on=("config.reloaded",)), "the node did not reload"
        assert reloaded[0]["changed"] == ["limits"] and reloaded[0]["restart"] == []
        done = b.cli.ok("--json", "sync", "ward", "--peer", a.address).json()
        assert done["received"] == 300 and records(b) == 300
