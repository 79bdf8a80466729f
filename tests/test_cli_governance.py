"""Governance and polls from the command line, through the node: the Governor on the embedded devnet (tokens and
delegation from its faucet), a Datanet's anonymous poll on the devnet, and on anvil, where no faucet exists and
the fresh sender is funded from a payer key file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from client.chain.anvil import ANVIL_KEY, running_anvil
from client.chain.types import DEVNET_GOVERNANCE
from tests.conftest import Cli, clean_env
from tests.test_cli_chain import first_records, write_config


@pytest.fixture
def cli(headless_cli: Cli) -> Cli:
    headless_cli.env["DATANET_PASSPHRASE"] = "governance tests passphrase"
    return headless_cli


def one_sentence(result_stderr: str) -> str:
    line = result_stderr.strip()
    assert line.startswith("datanet: ") and "\n" not in line and "Traceback" not in line, result_stderr
    return line


def member(folder: Path, deployed: dict[str, Any]) -> Cli:
    """Another machine using the same chain, told where the contracts are in its config."""
    other = Cli(folder / "data", folder / "config", clean_env(folder))
    other.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    other.env["DATANET_PASSPHRASE"] = "the other hospital's passphrase"
    addresses = {k: v for k, v in deployed.items() if k not in ("chain_id", "block")}
    write_config(other, **addresses)
    return other


def test_a_proposal_from_the_command_line_on_the_devnet(cli: Cli) -> None:
    cli.ok("init")
    status = cli.ok("--json", "gov", "status").json()
    assert status["power"]["votes"] == status["power"]["balance"] > DEVNET_GOVERNANCE.proposal_threshold
    assert status["settings"]["voting_period"] == DEVNET_GOVERNANCE.voting_period

    made = cli.ok(
        "--json", "gov", "propose", "challenge-period", "2d", "--description", "Shorten the challenge period"
    ).json()
    assert made["id"] == 1 and made["actions"][0]["change"] == {"parameter": "challenge-period", "value": 2 * 86400}
    no_datanet = cli.run("gov", "propose", "priority", "3", "--description", "x")
    assert no_datanet.code == 1 and "names its Datanet" in one_sentence(no_datanet.stderr)
    bad_value = cli.run("gov", "propose", "batch-stake-floor", "lots", "--description", "x")
    assert bad_value.code == 1 and "is not a stake" in one_sentence(bad_value.stderr)

    early = cli.run("gov", "queue", "1")  # voting has not ended
    assert early.code == 6 and "Proposal 1 is active; this step needs it succeeded" in one_sentence(early.stderr)
    voted = cli.ok("--json", "gov", "vote", "1", "for", "--reason", "faster stake returns").json()
    assert voted["proposal"]["votes_for"] == status["power"]["votes"] and voted["tx"].startswith("0x")
    twice = cli.run("gov", "vote", "1", "against")
    assert twice.code == 6 and "has already voted on this proposal" in one_sentence(twice.stderr)
    missing = cli.run("gov", "show", "9")
    assert missing.code != 0 and "There is no proposal 9" in one_sentence(missing.stderr)

    listed = cli.ok("--json", "gov", "list").json()
    assert [(p["id"], p["state"]) for p in listed] == [(1, "active")]
    shown = cli.ok("gov", "show", "1").stdout
    assert "set challenge-period to 2d" in shown and "Shorten the challenge period" in shown


def test_an_anonymous_poll_on_the_devnet(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "ward", "--task", "intent-classification", "--on-chain")
    cli.ok("import", "ward", str(first_records(tmp_path, 16)))
    not_yet = cli.run("poll", "create", "ward", "Share it?", "yes", "no")
    assert not_yet.code == 0  # any member may open a poll, contributor or not
    outside = cli.run("poll", "vote", "1", "yes")  # no batch yet: not in the contributor tree
    assert outside.code == 1 and "not in the contributor tree" in one_sentence(outside.stderr)
    cli.ok("submit", "ward")

    made = cli.ok(
        "--json", "poll", "create", "ward", "Share the ICU subset?", "yes", "no", "later", "--closes-in", "1h"
    ).json()
    assert (made["id"], made["options"], made["open"]) == (2, ["yes", "no", "later"], True)
    me = cli.ok("--json", "identity", "show").json()
    voted = cli.ok("--json", "poll", "vote", "2", "later").json()
    assert voted["option"] == "later" and voted["sent_from"].lower() != me["evm_address"].lower()
    again = cli.run("poll", "vote", "2", "1")
    assert again.code == 1 and "already voted in poll 2" in one_sentence(again.stderr)
    wrong = cli.run("poll", "vote", "2", "maybe")  # refused before any job is queued
    assert wrong.code == 1 and "is not an option of this poll (1. yes, 2. no, 3. later)" in one_sentence(wrong.stderr)
    closed = cli.run("poll", "vote", "7", "yes")
    assert closed.code == 6 and "There is no poll 7" in one_sentence(closed.stderr)
    results = cli.ok("--json", "poll", "results", "2").json()
    assert (results["tally"], results["votes"], results["datanet"]) == ([0, 0, 1], 1, "ward")
    listed = cli.ok("--json", "poll", "list", "ward").json()
    assert [p["id"] for p in listed] == [1, 2]
    short = cli.run("poll", "create", "ward", "q", "a", "b", "--closes-in", "10")
    assert short.code == 1 and "a minute to a year" in one_sentence(short.stderr)
    jobs = cli.ok("--json", "jobs").json()
    assert [j["params"] for j in jobs if j["kind"] == "vote" and j["state"] == "done"] == [{"poll": 2}]
    # Nothing on this machine's disk ties it to the vote: not its option, its transaction or its sender.
    cli.ok("node", "stop")
    for file in [*cli.data_dir.glob("node/jobs.db*"), *cli.data_dir.glob("logs/*")]:
        content = file.read_bytes()
        for secret in (voted["tx"][2:], voted["sent_from"][2:].lower(), voted["sent_from"][2:]):
            assert secret.encode() not in content, file
        assert b'"option"' not in content, file


def test_a_vote_on_a_chain_without_a_faucet_is_paid_by_the_payer_key(cli: Cli, tmp_path: Path) -> None:
    with running_anvil() as anvil:
        cli.env["DATANET_RPC_URL"] = anvil.url
        cli.ok("init")
        me = cli.ok("--json", "identity", "show").json()["evm_address"]
        anvil.w3.provider.make_request("anvil_setBalance", [me, hex(10**19)])  # type: ignore[arg-type]
        deployed = cli.ok("--json", "chain", "deploy", "--governance", "devnet").json()
        assert deployed["governor"] and deployed["polls"]
        cli.ok("create", "ward", "--task", "intent-classification", "--on-chain", "--private")
        cli.ok("poll", "enrolment", "ward", "open")
        cli.ok("poll", "enrol", "ward")

        # A second hospital: allowed by the owner, joins, and is enrolled by the join (enrolment is open).
        other = member(tmp_path / "other", deployed)
        other.env["DATANET_RPC_URL"] = anvil.url
        other.ok("init")
        theirs = other.ok("--json", "identity", "show").json()["evm_address"]
        anvil.w3.provider.make_request("anvil_setBalance", [theirs, hex(10**19)])  # type: ignore[arg-type]
        cli.ok("allow", "ward", theirs)
        joined = other.ok("--json", "join", "ward").json()
        assert joined["enrolled"] is True

        poll = cli.ok("--json", "poll", "create", "ward", "Renew the consortium?", "yes", "no").json()

        unpaid = cli.run("poll", "vote", str(poll["id"]), "yes")
        assert unpaid.code == 1 and "--payer-key-file" in one_sentence(unpaid.stderr)
        payer = tmp_path / "payer.key"
        payer.write_text("0x" + ANVIL_KEY.hex() + "\n")
        os.chmod(payer, 0o644)
        open_file = cli.run("poll", "vote", str(poll["id"]), "yes", "--payer-key-file", str(payer))
        assert open_file.code == 1 and "chmod 600" in one_sentence(open_file.stderr)
        os.chmod(payer, 0o600)
        voted = cli.ok("--json", "poll", "vote", str(poll["id"]), "yes", "--payer-key-file", str(payer)).json()

        tx = anvil.w3.eth.get_transaction(voted["tx"])
        assert tx["from"] == voted["sent_from"] != me
        assert me[2:].lower() not in bytes(tx["input"]).hex()
        blocks = [anvil.w3.eth.get_block(n, full_transactions=True) for n in range(anvil.w3.eth.block_number + 1)]
        sent = [t for b in blocks for t in b["transactions"] if isinstance(t, Mapping)]
        funders = {t["from"] for t in sent if t["to"] == voted["sent_from"]}
        assert funders == {Account.from_key(ANVIL_KEY).address}  # the payer, never the member
        other.ok("poll", "vote", str(poll["id"]), "no", "--payer-key-file", str(payer))
        assert cli.ok("--json", "poll", "results", str(poll["id"])).json()["tally"] == [1, 1]
