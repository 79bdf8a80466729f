"""The chain from the command line: the embedded devnet by default (no server), anvil through --rpc-url, and what
happens when the chain refuses, disappears mid-submission, or is another chain than configured."""

from __future__ import annotations

import contextlib
import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.chain.anvil import Anvil, running_anvil
from tests.conftest import Cli

SAMPLE = Path(__file__).resolve().parent.parent / "client" / "sample" / "clinic_intents.jsonl"


@pytest.fixture
def cli(headless_cli: Cli) -> Cli:
    headless_cli.env["DATANET_PASSPHRASE"] = "chain tests passphrase"
    return headless_cli


def first_records(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"first-{n}.jsonl"
    path.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:n]))
    return path


def batch_statuses(cli: Cli, name: str) -> list[str]:
    return [b["status"] for b in cli.ok("--json", "batches", name).json()["batches"]]


def test_submit_on_the_embedded_devnet_and_resume(cli: Cli, tmp_path: Path) -> None:
    created = cli.ok(
        "--json", "create", "clinic", "--task", "intent-classification", "--on-chain", "--batch-stake", "7"
    )
    chain = created.json()["chain"]
    assert (chain["id"], chain["visibility"], chain["policy"], chain["task"]) == (
        1,
        "public",
        "open",
        "intent-classification",
    )
    cli.ok("import", "clinic", str(first_records(tmp_path, 40)))
    first = cli.ok("--json", "submit", "clinic").json()
    assert [b["count"] for b in first["submitted"]] == [16, 16, 8]
    assert all(b["tx"] and 250_000 < b["gas"] < 1_600_000 for b in first["submitted"])
    assert batch_statuses(cli, "clinic") == ["submitted"] * 3

    again = cli.ok("--json", "submit", "clinic").json()  # nothing new: nothing sent
    assert again["submitted"] == [] and again["already_submitted"] == 3
    listed = cli.ok("--json", "list", "--chain").json()["datanets"]
    assert [(d["name"], d["member"], d["batch_stake"]) for d in listed] == [("clinic", True, 7)]
    status = cli.ok("--json", "chain", "status").json()
    assert status["chain"] == "devnet" and status["block"] > 3 and status["balance_wei"] > 0
    devnet = cli.data_dir / "chain" / "devnet.db"
    assert stat.S_IMODE(devnet.stat().st_mode) == 0o600

    # A reset devnet no longer has the batches: submit sends them again (same proofs, same Datanet id).
    refused = cli.run("chain", "reset")
    assert refused.code == 1 and "--yes" in refused.stderr
    cli.ok("chain", "reset", "--yes")
    assert "no Datanet named 'clinic' on this chain" in cli.run("submit", "clinic").stderr
    cli.ok("create", "clinic", "--on-chain")  # registers the existing local Datanet
    resent = cli.ok("--json", "submit", "clinic").json()
    assert len(resent["submitted"]) == 3 and resent["proved"] == 0


def test_create_options_need_on_chain_and_errors_are_one_sentence(cli: Cli) -> None:
    bad = cli.run("create", "x", "--private")
    assert bad.code == 1 and "--on-chain" in bad.stderr
    cli.ok("create", "hospital", "--on-chain", "--private")
    taken = cli.run("create", "hospital", "--on-chain")  # the local shard exists; the name is taken on chain
    assert taken.code == 1 and "already exists on chain" in taken.stderr
    again = cli.run("join", "hospital")
    assert again.code == 1 and again.stderr.strip() == "datanet: You are already a member of Datanet 'hospital'."
    missing = cli.run("join", "nowhere")
    assert missing.code == 1 and "no Datanet named 'nowhere'" in missing.stderr and "Traceback" not in missing.stderr


def write_config(cli: Cli, **chain: object) -> None:
    cli.config_dir.mkdir(parents=True, exist_ok=True)
    lines = ["[chain]"] + [f"{k} = {json.dumps(v)}" for k, v in chain.items()]
    (cli.config_dir / "config.toml").write_text("\n".join(lines) + "\n")


def test_a_chain_that_disappears_mid_submission_loses_nothing_and_resume_works(cli: Cli, tmp_path: Path) -> None:
    with running_anvil("--no-mining") as anvil:
        cli.env["DATANET_RPC_URL"] = anvil.url
        write_config(cli, receipt_timeout=3)
        cli.ok("create", "ward", "--task", "intent-classification")
        address = cli.ok("--json", "identity", "show").json()["evm_address"]
        anvil.w3.provider.make_request("anvil_setBalance", [address, hex(10**19)])  # type: ignore[arg-type]
        with mining(anvil):
            cli.ok("chain", "deploy")
            cli.ok("create", "ward", "--on-chain")
        cli.ok("import", "ward", str(first_records(tmp_path, 16)))

        lost = cli.run("submit", "ward")  # sent, but the chain mines nothing: no receipt
        assert lost.code == 6, lost.stderr
        assert "got no receipt" in lost.stderr and "Nothing was marked done" in lost.stderr
        assert batch_statuses(cli, "ward") == ["proved"]

        mine(anvil)  # the transaction lands after all
        resumed = cli.ok("--json", "submit", "ward").json()
        assert [(b["count"], b["tx"]) for b in resumed["submitted"]] == [(16, None)]  # found on chain, not resent
        assert batch_statuses(cli, "ward") == ["submitted"]

        cli.ok("import", "ward", str(first_records(tmp_path, 32)))
        anvil.process.terminate()  # the node goes away
        anvil.process.wait()
        gone = cli.run("submit", "ward")
        assert gone.code == 6 and "Cannot reach the chain" in gone.stderr and "\n" not in gone.stderr.strip()
        assert batch_statuses(cli, "ward") == ["submitted"]
        assert cli.ok("--json", "batches", "ward").json()["pending"] == 16


def mine(anvil: Anvil) -> None:
    anvil.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@contextlib.contextmanager
def mining(anvil: Anvil) -> Iterator[None]:
    """With --no-mining, deploying and registering need blocks mined while they wait."""
    stop = threading.Event()

    def miner() -> None:
        while not stop.is_set():
            mine(anvil)
            time.sleep(0.05)

    thread = threading.Thread(target=miner, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_wrong_chain_id_is_refused(cli: Cli) -> None:
    with running_anvil() as anvil:
        cli.env["DATANET_RPC_URL"] = anvil.url
        write_config(cli, chain_id=1)
        cli.ok("create", "x")
        result = cli.run("chain", "status")
    assert result.code == 6 and "serves chain 31337, but the config expects chain 1" in result.stderr


def test_no_contracts_on_a_chain_is_explained(cli: Cli) -> None:
    with running_anvil() as anvil:
        cli.env["DATANET_RPC_URL"] = anvil.url
        cli.ok("create", "x")
        result = cli.run("chain", "status")
    assert result.code == 6 and "datanet chain deploy --rpc-url" in result.stderr


def test_an_adapter_is_registered_with_the_batches_it_was_trained_on(train_cli: Cli, tmp_path: Path) -> None:
    cli = train_cli
    cli.ok("create", "clinic", "--task", "intent-classification", "--on-chain")
    cli.ok("import", "clinic", str(first_records(tmp_path, 64)))
    cli.ok("prove", "clinic", "--batch", "32")  # proved for a local id; submit proves these two again
    trained = cli.ok("--json", "train", "clinic", "--base", "tiny-classifier", "--threads", "1").json()
    adapter = trained["adapter_id"]

    early = cli.run("adapters", "register", adapter)
    assert early.code == 1 and "not on chain yet" in early.stderr and "datanet submit clinic" in early.stderr

    submitted = cli.ok("--json", "submit", "clinic").json()
    assert len(submitted["submitted"]) == 4 and submitted["proved"] == 2
    registered = cli.ok("--json", "adapters", "register", adapter).json()
    assert (registered["datanet"], registered["batches"]) == ("clinic", 2)
    again = cli.run("adapters", "register", adapter)
    assert again.code == 6 and "already registered" in again.stderr
