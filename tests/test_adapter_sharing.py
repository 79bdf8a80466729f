"""Sharing an adapter with a Datanet's members over libp2p, on a shared chain (anvil on 127.0.0.1): only what the
owner shares leaves, only to a member, only an adapter registered on chain is stored, and the owner's audit log
records each copy that left. Real node processes, real training (the tiny classifier), real contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.chain.anvil import running_anvil
from client.p2p import adapter_share
from client.p2p.errors import ProtocolViolation
from client.sample.build_sample import TRAIN_FILE
from tests.test_chain_admission import share_chain
from tests.test_node import make_node

DATANET = "clinic"


def train(node: object, seed: int, model_cache: Path) -> str:
    cli = node.cli  # type: ignore[attr-defined]
    cli.env["DATANET_CACHE_DIR"] = str(model_cache)
    out = cli.ok("--json", "train", DATANET, "--base", "tiny-classifier", "--epochs", "1", "--seed", str(seed))
    adapter_id: str = out.json()["adapter_id"]
    return adapter_id


@pytest.mark.slow
def test_a_shared_adapter_reaches_members_only_checked_against_the_chain(tmp_path: Path, model_cache: Path) -> None:
    with running_anvil() as anvil:
        owner, member, outsider = (make_node(tmp_path, name, DATANET) for name in ("owner", "member", "outsider"))

        def fund(account: str) -> None:
            anvil.w3.provider.make_request("anvil_setBalance", [account, hex(10**19)])  # type: ignore[arg-type]

        share_chain([owner, member, outsider], anvil.url, owner, fund)
        owner.cli.ok("create", DATANET, "--on-chain")  # the local Datanet registered and bound
        member.cli.ok("join", DATANET)
        outsider.cli.ok("join", DATANET)  # a member on chain, but not of the owner's vault (no chain admission)
        owner.cli.ok("members", DATANET, "add", member.peer_id)
        rows = TRAIN_FILE.read_text().splitlines()[:120]
        (tmp_path / "part.jsonl").write_text("\n".join(rows) + "\n")
        owner.cli.ok("import", DATANET, str(tmp_path / "part.jsonl"))
        registered, unregistered = train(owner, 1, model_cache), train(owner, 2, model_cache)
        owner.cli.ok("adapters", "register", registered)
        refused = owner.cli.run("adapters", "share", unregistered)
        assert refused.code == 1 and "not registered on chain" in refused.stderr
        owner.cli.ok("adapters", "share", registered)
        owner.cli.ok("node", "stop")
        owner.start()
        try:
            fetched = member.cli.ok("--json", "adapters", "fetch", registered, "--peer", owner.address).json()
            assert fetched == {"adapter_id": registered, "datanet": DATANET, "peer": owner.peer_id}
            shown = member.cli.ok("--json", "adapters", "show", registered).json()
            assert shown["received"]["from"] == owner.peer_id
            assert (
                shown["trained_on"]
                == json.loads(owner.cli.ok("--json", "adapters", "show", registered).stdout)["trained_on"]
            )
            again = member.cli.run("adapters", "fetch", registered, "--peer", owner.address)
            assert again.code == 1 and "here already" in again.stderr

            not_shared = member.cli.run("adapters", "fetch", unregistered, "--peer", owner.address)
            assert not_shared.code == 1 and "not shared here" in not_shared.stderr
            stranger = outsider.cli.run("adapters", "fetch", registered, "--peer", owner.address)
            assert stranger.code == 1 and "not a member of the adapter's Datanet" in stranger.stderr
            assert not (outsider.cli.data_dir / "adapters" / registered).exists()
            for result in (not_shared, stranger):
                assert "Traceback" not in result.stderr
        finally:
            owner.stop()
        audit = owner.cli.ok("audit", "export").stdout.splitlines()
        sent = [entry for entry in map(json.loads, audit) if entry["kind"] == "adapter.sent"]
        assert len(sent) == 1 and sent[0]["peer"] == member.peer_id
        assert sent[0]["adapter"] == registered and sent[0]["datanet"] == DATANET


def test_hostile_adapter_messages_are_refused() -> None:
    for payload in (
        b"nonsense",
        b'{"adapter_id": "../../etc/passwd"}',
        b'{"adapter_id": "' + b"a" * 64 + b'", "credential": "00"}',
        b"[" * 50_000,
    ):
        with pytest.raises(ProtocolViolation):
            adapter_share.parse_request(payload)
    good = {"adapter_config.json": 10, "adapter_model.safetensors": 20}
    for offer in (
        {"manifest": [], "files": good},
        {"manifest": {}, "files": {"adapter_config.json": 10}},
        {"manifest": {}, "files": {**good, "evil.py": 3}},
    ):
        with pytest.raises(ProtocolViolation):
            adapter_share.parse_offer(json.dumps(offer).encode())
    named = {"datanet": {"name": "clinic"}, "base_model": {"weights_sha256": "ab" * 32}}
    for files in (
        {**good, "adapter_model.safetensors": adapter_share.MAX_FILE + 1},
        {**good, "adapter_config.json": -1},
        {**good, "adapter_config.json": True},
    ):
        with pytest.raises(ProtocolViolation):
            adapter_share.parse_offer(json.dumps({"manifest": named, "files": files}).encode())
    for manifest in ({}, {**named, "datanet": "clinic"}, {**named, "base_model": {"weights_sha256": "../x"}}):
        with pytest.raises(ProtocolViolation):
            adapter_share.parse_offer(json.dumps({"manifest": manifest, "files": good}).encode())
    manifest, sizes = adapter_share.parse_offer(json.dumps({"manifest": named, "files": good}).encode())
    assert manifest == named and sizes == [("adapter_config.json", 10), ("adapter_model.safetensors", 20)]
