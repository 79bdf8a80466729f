"""Federated rounds with real parts: four `datanet node run` processes on 127.0.0.1 (a coordinator and three
members of the sample Datanet, split three ways by intent), Flower's SuperLink and SuperNodes with TLS and node
keys, SecAgg+, the members' real LoRA training. What a member's ClientApp receives and sends is recorded at
Flower's message layer (DATANET_FEDERATION_RECORD) and searched for the members' record texts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client.chain.anvil import Anvil, running_anvil
from client.sample.build_sample import EVAL_FILE, TRAIN_FILE
from tests.test_chain_admission import share_chain
from tests.test_node import NodeProc, make_node

DATANET = "clinic"
# By department (the front desk, the clinic, the office): intents a member must tell apart from each other are held
# by the same member. Each member's softmax runs over its own intents (client/training/trainer.py,
# restrict_labels), so no round contrasts two intents that different members hold: with the appointments split
# between members, two rounds reach about 0.85 here.
GROUPS = (
    ("book_appointment", "cancel_appointment", "opening_hours"),
    ("prescription_refill", "symptom_advice", "test_results"),
    ("billing_question", "update_contact"),
)
EVAL = EVAL_FILE
ROUND_TIMEOUT = 900.0


def split(folder: Path) -> list[Path]:
    rows = [json.loads(line) for line in TRAIN_FILE.read_text().splitlines()]
    files = []
    for number, group in enumerate(GROUPS):
        path = folder / f"part-{number}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"] in group))
        files.append(path)
    return files


def member(tmp_path: Path, name: str, part: Path, model_cache: Path) -> NodeProc:
    node = make_node(tmp_path, name, DATANET)
    node.cli.env["DATANET_CACHE_DIR"] = str(model_cache)
    node.cli.ok("import", DATANET, str(part))
    return node


def manifest(node: NodeProc, adapter_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = node.control().call("adapters.show", id=adapter_id)["manifest"]
    return shown


@pytest.mark.heavy
def test_three_members_train_two_rounds_and_no_record_leaves(tmp_path: Path, model_cache: Path) -> None:
    with running_anvil() as anvil:
        three_members_two_rounds(tmp_path, model_cache, anvil)


def three_members_two_rounds(tmp_path: Path, model_cache: Path, anvil: Anvil) -> None:
    parts = split(tmp_path)
    coordinator = make_node(tmp_path, "coordinator", DATANET)
    coordinator.cli.env["DATANET_CACHE_DIR"] = str(model_cache)
    members = [member(tmp_path, f"m{n}", part, model_cache) for n, part in enumerate(parts)]
    outsider = member(tmp_path, "outsider", parts[0], model_cache)

    def fund(account: str) -> None:
        anvil.w3.provider.make_request("anvil_setBalance", [account, hex(10**19)])  # type: ignore[arg-type]

    share_chain([coordinator, *members, outsider], anvil.url, coordinator, fund)
    coordinator.cli.ok("create", DATANET, "--on-chain")
    for node in members:
        node.cli.ok("join", DATANET)
        node.cli.env["DATANET_FEDERATION_RECORD"] = str(node.cli.data_dir)
    for node in members[:2]:  # the third is admitted by its on-chain membership alone
        coordinator.cli.ok("members", DATANET, "add", node.peer_id)
    members[0].cli.ok("submit", DATANET, "--limit", "16")  # one proven batch on chain: in the lineage
    proven = members[0].cli.ok("--json", "batches", DATANET).json()["batches"][0]["root"]
    for node in (coordinator, *members, outsider):
        node.start()
    try:
        serve = coordinator.control().call(
            "federation.serve", datanet=DATANET, members=3, rounds=2, eval=str(EVAL), epochs=3
        )
        control = coordinator.control()
        opened = control.wait(
            lambda _: (
                bool(control.call("federation.status")["serving"]) or control.job(serve["id"])["state"] != "running"
            ),
            timeout=120,
            on=("coordinate.progress", "job"),
        )
        assert opened and control.call("federation.status")["serving"], control.job(serve["id"])
        refused = outsider.cli.run("federation", "join", DATANET, "--coordinator", coordinator.address)
        assert refused.code == 1
        assert "not a member of that Datanet there" in refused.stderr and "Traceback" not in refused.stderr
        for node in members:
            node.control().call("federation.join", datanet=DATANET, coordinator=coordinator.address)
        done = coordinator.control().wait_job(serve["id"], timeout=ROUND_TIMEOUT)
        assert done["state"] == "done", done["error"]
        summary = done["progress"]
        assert [r["round"] for r in summary["rounds"]] == [1, 2]
        final = manifest(coordinator, summary["adapter_id"])
        assert final["federation"]["round"] == 2
        assert final["federation"]["previous_round_adapter"] == summary["rounds"][0]["adapter_id"]
        participants = {p["peer"]: p for p in final["federation"]["participants"]}
        assert sorted(participants) == sorted(m.peer_id for m in members)
        assert (
            proven in participants[members[0].peer_id]["batch_roots"] and proven in final["trained_on"]["batch_roots"]
        )
        assert all(p["dp"] is None for p in participants.values()) and final["dp"] is None
        assert summary["without_update"] == []
        registered = coordinator.cli.ok("--json", "adapters", "register", summary["adapter_id"]).json()
        assert registered["batches"] == len(final["trained_on"]["batch_roots"]) >= 1  # the lineage, on chain
        records = [len(p.read_text().splitlines()) for p in parts]
        assert final["trained_on"]["records"] <= sum(records)
        accuracy = final["evaluation"]["after"]["accuracy"]
        assert accuracy >= 0.9, final["evaluation"]
        # no member's records, in any message its ClientApp received or sent
        for node, part in zip(members, parts, strict=True):
            recorded = (node.cli.data_dir / "messages.bin").read_bytes()
            assert b"== out" in recorded and b"== in" in recorded
            texts = [json.loads(line)["text"].encode() for line in part.read_text().splitlines()]
            assert not [t for t in texts if t in recorded]
        # A member alone does no better: its adapter's head knows its own intents only, so on the held-out file it
        # is right at most on the records of those intents (a ceiling, above what its training would reach).
        held_out = [json.loads(line)["label"] for line in EVAL.read_text().splitlines()]
        for group in GROUPS:
            ceiling = sum(label in group for label in held_out) / len(held_out)
            assert accuracy > ceiling
    finally:
        for node in (coordinator, *members, outsider):
            if node.proc is not None:
                node.stop()


def flower_processes(folder: Path) -> list[int]:
    """Processes whose command line names `folder` (a member's Flower SuperNode and what it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # it ended meanwhile
                continue
    return found


@pytest.mark.heavy
def test_a_member_killed_mid_round_leaves_the_round_to_the_others(tmp_path: Path, model_cache: Path) -> None:
    parts = split(tmp_path)
    coordinator = make_node(tmp_path, "coordinator", DATANET)
    coordinator.cli.env["DATANET_CACHE_DIR"] = str(model_cache)
    members = [member(tmp_path, f"m{n}", part, model_cache) for n, part in enumerate(parts)]
    for node in members:
        coordinator.cli.ok("members", DATANET, "add", node.peer_id)
    for node in (coordinator, *members):
        node.start()
    try:
        control = coordinator.control()
        serve = control.call(
            "federation.serve",
            datanet=DATANET,
            members=3,
            min_members=2,
            rounds=2,
            eval=str(EVAL),
            epochs=1,
            secagg_timeout=30.0,
        )
        control.wait(
            lambda _: bool(control.call("federation.status")["serving"]), timeout=120, on=("coordinate.progress",)
        )
        for number, node in enumerate(members):
            dp = {"dp_epsilon": 8.0} if number == 0 else {}  # this member insists on DP-SGD
            node.control().call("federation.join", datanet=DATANET, coordinator=coordinator.address, **dp)
        doomed = members[2]
        training = doomed.control().wait(
            lambda _: any(j["kind"] == "fit_round" and j["state"] == "running" for j in doomed.control().jobs()),
            timeout=300,
            on=("job",),
        )
        assert training, "the member never started its round"
        folder = next((doomed.cli.data_dir / "federation").glob("member-*"))
        assert doomed.proc is not None
        doomed.proc.kill()  # SIGKILL, in the middle of its round's training
        doomed.proc.communicate(timeout=30)  # waits, and closes the pipes
        doomed.proc = None
        done = control.wait_job(serve["id"], timeout=ROUND_TIMEOUT)
        assert not flower_processes(folder)  # the dead node's SuperNode went with it
        if done["state"] == "failed":  # both rounds halted: a clean failure, in one sentence
            assert "without any round's update" in str(done["error"]), done["error"]
            return
        assert done["state"] == "done", done["error"]
        summary = done["progress"]
        # Each round goes on without the dead member: it finishes with the two left, or (when Flower still lists
        # the dead node as online, samples it and its secure aggregation halts) it has no update.
        assert summary["rounds"], summary
        survivors = sorted(m.peer_id for m in members[:2])
        for stored in summary["rounds"]:
            adapter = manifest(coordinator, stored["adapter_id"])
            assert sorted(p["peer"] for p in adapter["federation"]["participants"]) == survivors
            budgets = {p["peer"]: p["dp"] for p in adapter["federation"]["participants"]}
            assert budgets[members[1].peer_id] is None
            spent = budgets[members[0].peer_id]["epsilon_spent"]  # the DP budget of every participant, reported
            assert 0 < spent <= 8.0 + 1e-6 and adapter["dp"]["max_epsilon_spent"] == spent
        assert len(summary["rounds"]) + len(summary["without_update"]) == 2
    finally:
        for node in (coordinator, *members):
            if node.proc is not None:
                node.stop()
