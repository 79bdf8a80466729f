"""Sync admission on a shared chain (anvil on 127.0.0.1) is by the shard's bound on-chain Datanet, never by its name:
the name-collision attacks, and what a received record is on the CLI (never pending, its contributor shown)."""

from __future__ import annotations

import json
from pathlib import Path

from client.chain.anvil import running_anvil
from storage.vault import Vault
from tests.test_node import PASSPHRASE, NodeProc, jsonl, make_node


def share_chain(nodes: list[NodeProc], url: str, deployer: NodeProc, fund: object) -> dict[str, str]:
    accounts = {}
    for node in nodes:
        node.cli.env["DATANET_RPC_URL"] = url
        (node.cli.config_dir / "config.toml").write_text(
            "[node]\nmdns = false\nannounce_every = 3600\nmembership_ttl = 0.5\n"
        )
        accounts[node.peer_id] = node.cli.ok("--json", "identity", "show").json()["evm_address"]
        fund(accounts[node.peer_id])  # type: ignore[operator]
    deployer.cli.ok("chain", "deploy")
    for node in nodes:
        if node is deployer:
            continue
        target = node.cli.data_dir / "chain" / "deployments"
        target.mkdir(parents=True, exist_ok=True)
        for file in (deployer.cli.data_dir / "chain" / "deployments").iterdir():
            (target / file.name).write_bytes(file.read_bytes())
    return accounts


def test_a_datanet_of_the_same_name_elsewhere_on_the_chain_admits_nobody(tmp_path: Path) -> None:
    with running_anvil() as anvil:
        honest = make_node(tmp_path, "honest")
        stranger = make_node(tmp_path, "stranger", datanet="Ward")
        owner = make_node(tmp_path, "owner", datanet="clinic")

        def fund(account: str) -> None:
            anvil.w3.provider.make_request("anvil_setBalance", [account, hex(10**19)])  # type: ignore[arg-type]

        share_chain([honest, stranger, owner], anvil.url, honest, fund)
        honest.cli.ok("create", "ward", "--on-chain", "--private")  # bound to the honest owner's "ward"
        honest.cli.ok("create", "clinic", "--task", "intent-classification")  # never registered: vault members only
        honest.cli.ok("import", "ward", str(jsonl(tmp_path / "w.jsonl", range(10))))
        honest.cli.ok("import", "clinic", str(jsonl(tmp_path / "c.jsonl", range(10))))
        # 1. The stranger registers "Ward" (the registry is permissionless; names are public, and case matters).
        stranger.cli.ok("create", "Ward", "--on-chain")
        # 2. Another owner registers an open "clinic" on chain, and the stranger joins it.
        owner.cli.ok("create", "clinic", "--on-chain")
        stranger.cli.ok("join", "clinic")
        for name in ("Ward", "clinic"):  # the stranger is a member of both, bound to them
            vault = Vault.unlock(stranger.cli.data_dir, keystore=None, passphrase=lambda: PASSPHRASE)
            with vault.open_shard(name) as shard:
                assert shard.binding() is not None

        honest.start()
        try:
            for name in ("Ward", "clinic"):
                refused = stranger.cli.run("sync", name, "--peer", honest.address)
                assert refused.code == 1 and "not a member" in refused.stderr, (name, refused.stderr)
                count = stranger.cli.ok("--json", "records", name, "count").json()["records"]
                assert count == 0, name  # not one record of the honest node's left it
        finally:
            honest.stop()
        log = (honest.cli.data_dir / "logs" / "datanet.log").read_text()
        assert log.count("refused sync") >= 2


def test_a_synced_record_is_received_never_pending_and_shows_its_contributor(tmp_path: Path) -> None:
    a, b = make_node(tmp_path, "a"), make_node(tmp_path, "b")
    a.cli.ok("members", "ward", "add", b.peer_id)
    b.cli.ok("members", "ward", "add", a.peer_id)
    a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(20))))
    a.cli.ok("prove", "ward", "--batch", "16", "--jobs", "1")  # one batch of 16; 4 records stay pending at a
    a.start()
    try:
        synced = b.cli.ok("--json", "sync", "ward", "--peer", a.address).json()
    finally:
        a.stop()
    assert synced["received"] == 20
    proved = b.cli.ok("--json", "prove", "ward").json()
    assert proved["batches"] == [] and proved["pending"] == 0  # a's records are not b's to prove
    listed = b.cli.ok("--json", "records", "ward", "list", "--limit", "100").json()["records"]
    assert {r["origin"] for r in listed} == {"peer"} and {r["received_from"] for r in listed} == {a.peer_id}
    commitment = a.cli.ok("--json", "identity", "show").json()["identity_commitment"]
    shown = [b.cli.ok("--json", "records", "ward", "show", r["id"]).json() for r in listed]
    with_provenance = [s for s in shown if s["provenance"]]
    assert len(with_provenance) == 16
    for doc in with_provenance:
        (p,) = doc["provenance"]
        assert int(p["contributor_commitment"], 16) == int(str(commitment), 0)
        assert p["own"] is False and p["carried_by"] == a.peer_id and len(p["merkle_path"]) == 4
    text = b.cli.ok("records", "ward", "show", with_provenance[0]["id"]).stdout
    assert "received from peer" in text and "proof verified here" in text
    received = b.cli.ok("--json", "batches", "ward", "--received").json()
    assert len(received["received_batches"]) == 1 and received["unverified"] == 0
    assert json.dumps(received).count(a.peer_id) == 0  # batches name contributors by commitment, not peer
