"""The CLI on a machine with no keyring (a hospital server): passphrase unlock, one-sentence errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from client.sample.build_sample import TRAIN_FILE
from tests.conftest import Cli, snapshot

PASSPHRASE = "hospital night shift 42"


@pytest.fixture
def cli(headless_cli: Cli, tmp_path: Path) -> Cli:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    headless_cli.env["DATANET_PASSPHRASE_FILE"] = str(secret)
    return headless_cli


def _assert_one_sentence(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("datanet: ")
    assert "Traceback" not in stderr


def test_without_keyring_or_passphrase_it_refuses_in_one_sentence(headless_cli: Cli) -> None:
    result = headless_cli.run("create", "clinic")
    assert result.code == 3
    _assert_one_sentence(result.stderr)
    assert "No keyring is available" in result.stderr and "DATANET_PASSPHRASE_FILE" in result.stderr
    assert not (headless_cli.data_dir / "keys.json").exists()


def test_first_run_creates_vault_identity_and_shows_the_recovery_code_once(cli: Cli) -> None:
    first = cli.ok("--json", "create", "clinic", "--task", "intent-classification")
    doc = first.json()
    assert doc["datanet"] == "clinic" and doc["task"] == "intent-classification"
    assert doc["recovery_code"] in first.stderr
    second = cli.ok("--json", "identity", "show")
    assert "recovery_code" not in second.json() and "RECOVERY" not in second.stderr
    assert second.json()["peer_id"].startswith("12D3KooW")
    status = cli.ok("--json", "vault", "status").json()
    assert status["keyring"] is None and status["passphrase"] is True
    assert status["unlocked_with"] == "passphrase"


def test_records_lifecycle(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "clinic", "--task", "intent-classification")
    imported = cli.ok("--json", "import", "clinic", str(TRAIN_FILE)).json()
    assert imported["imported"][0]["added"] == 480 and imported["records"] == 480
    again = cli.ok("import", "clinic", str(TRAIN_FILE))
    assert "0 added, 480 duplicates skipped" in again.stdout

    listed = cli.ok("--json", "records", "clinic", "list", "--limit", "5").json()
    assert listed["total"] == 480 and len(listed["records"]) == 5
    assert cli.ok("records", "clinic", "list", "--limit", "5", "--json").json() == listed  # global flags go anywhere
    elsewhere = cli.run("records", "clinic", "count", f"--data-dir={tmp_path / 'nothing here'}")
    assert elsewhere.code != 0 and str(tmp_path / "nothing here") in elsewhere.stderr
    first_id = listed["records"][0]["id"]
    first_line = json.loads(TRAIN_FILE.read_text().splitlines()[0])
    shown = cli.ok("--json", "records", "clinic", "show", first_id[:10]).json()
    assert shown["record"] == first_line and shown["source"] == f"{TRAIN_FILE.name}:1"

    export = tmp_path / "out.jsonl"
    cli.ok("records", "clinic", "export", str(export))
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    assert exported == [json.loads(line) for line in TRAIN_FILE.read_text().splitlines()]
    refused = cli.run("records", "clinic", "export", str(export))
    assert refused.code == 1 and "--force" in refused.stderr

    deleted = cli.ok("--json", "records", "clinic", "delete", first_id).json()
    assert (deleted["deleted"], deleted["records"]) == (1, 479)
    by_filter = cli.ok("--json", "records", "clinic", "delete", "--source", f"{TRAIN_FILE.name}:1?").json()
    assert by_filter["deleted"] == 10  # lines 10-19
    assert cli.ok("--json", "records", "clinic", "count").json()["records"] == 469
    check = cli.ok("--json", "vault", "check").json()
    assert check["ok"] is True and check["datanets"][0]["records"] == 469
    listing = cli.ok("--json", "list").json()["datanets"]
    assert [(d["name"], d["records"]) for d in listing] == [("clinic", 469)]


def test_bad_input_names_file_and_line_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "clinic")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "broken"\n{"text": "also fine"}\n')
    before = snapshot(cli.data_dir)
    result = cli.run("import", "clinic", str(bad))
    assert result.code == 4
    assert f"{bad}:2: invalid JSON" in result.stdout
    assert snapshot(cli.data_dir) == before
    skipped = cli.ok("--json", "import", "clinic", str(bad), "--skip-bad").json()
    assert skipped["imported"][0]["added"] == 2
    assert skipped["imported"][0]["skipped"] == [f"{bad}:2: invalid JSON (Expecting ',' delimiter at column 18)"]


def test_wrong_passphrase_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "clinic")
    cli.ok("import", "clinic", str(TRAIN_FILE))
    before = snapshot(cli.data_dir)
    result = cli.run("list", env={"DATANET_PASSPHRASE_FILE": None, "DATANET_PASSPHRASE": "not it"})
    assert result.code == 3
    _assert_one_sentence(result.stderr)
    assert "passphrase is wrong" in result.stderr
    no_input = cli.run("list", env={"DATANET_PASSPHRASE_FILE": None})
    assert no_input.code == 3 and "locked by a passphrase" in no_input.stderr
    assert snapshot(cli.data_dir) == before


def test_unknown_datanet_and_bad_usage(cli: Cli) -> None:
    cli.ok("init")
    missing = cli.run("records", "nowhere")
    assert missing.code == 1 and "no Datanet named 'nowhere'" in missing.stderr
    _assert_one_sentence(missing.stderr)
    again = cli.run("init")
    assert again.code == 1 and "already exists" in again.stderr
    usage = cli.run("frobnicate")
    assert usage.code == 2


def test_passphrase_change_rekey_and_recovery(cli: Cli, tmp_path: Path) -> None:
    created = cli.ok("--json", "create", "clinic").json()
    code_file = tmp_path / "code.txt"
    code_file.write_text(created["recovery_code"])
    cli.ok("import", "clinic", str(TRAIN_FILE))
    shard_file = next((cli.data_dir / "shards").glob("*.db"))
    cli.ok("vault", "rekey", "clinic")
    assert cli.ok("--json", "records", "clinic", "count").json()["records"] == 480

    cli.ok("vault", "passphrase", env={"DATANET_NEW_PASSPHRASE": "a brand new passphrase"})
    assert cli.run("list").code == 3  # the old passphrase no longer works
    assert cli.ok("list", env={"DATANET_PASSPHRASE_FILE": None, "DATANET_PASSPHRASE": "a brand new passphrase"})

    forgot = {"DATANET_PASSPHRASE_FILE": None, "DATANET_PASSPHRASE": "after recovery!"}
    cli.ok("vault", "recover", "--code-file", str(code_file), env=forgot)
    assert cli.ok("--json", "records", "clinic", "count", env=forgot).json()["records"] == 480
    assert shard_file.exists()

    typo = tmp_path / "typo.txt"
    typo.write_text(created["recovery_code"][:-1] + ("0" if created["recovery_code"][-1] != "0" else "1"))
    result = cli.run("vault", "recover", "--code-file", str(typo), env=forgot)
    assert result.code == 3 and "typo" in result.stderr


def test_identity_backup_restores_the_same_identity_elsewhere(cli: Cli, headless_cli: Cli, tmp_path: Path) -> None:
    original = cli.ok("--json", "identity", "show").json()
    backup = tmp_path / "me.backup"
    env = {"DATANET_BACKUP_PASSPHRASE": "backup passphrase"}
    cli.ok("identity", "export", str(backup), env=env)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600

    other = tmp_path / "other-machine"
    restored = cli.ok("--json", "--data-dir", str(other), "identity", "import", str(backup), env=env).json()
    assert restored["peer_id"] == original["peer_id"] and restored["changed"] is True
    shown = cli.ok("--json", "--data-dir", str(other), "identity", "show").json()
    assert (shown["peer_id"], shown["evm_address"]) == (original["peer_id"], original["evm_address"])

    third = tmp_path / "third"
    cli.ok("--data-dir", str(third), "init")
    refused = cli.run("--data-dir", str(third), "identity", "import", str(backup), env=env)
    assert refused.code == 1 and "--replace" in refused.stderr
    wrong = cli.run(
        "--data-dir", str(third), "identity", "import", str(backup), env={"DATANET_BACKUP_PASSPHRASE": "nope"}
    )
    assert wrong.code == 1 and "passphrase is wrong" in wrong.stderr


@pytest.mark.heavy
def test_demo_runs_and_reports_encryption(cli: Cli) -> None:
    doc = cli.ok("--json", "demo").json()
    assert doc["records"] == 480 and doc["plaintext_found"] is False and doc["check_ok"] is True
    assert len(doc["labels"]) == 8
    assert doc["adapter"]["after"]["accuracy"] >= 0.9 > doc["adapter"]["before"]["accuracy"]
    again = cli.ok("--json", "demo").json()
    assert (again["added"], again["duplicates"]) == (0, 480)
    assert again["adapter"]["adapter_id"] == doc["adapter"]["adapter_id"]  # same records and settings: reused
    assert len(doc["batch"]["submitted_now"]) == 1 and doc["batch"]["pending"] == 464
    assert len(again["batch"]["submitted_now"]) == 1 and again["batch"]["batches"] == 2


@pytest.mark.heavy
def test_demo_without_any_passphrase_uses_the_announced_demo_passphrase(headless_cli: Cli) -> None:
    result = headless_cli.ok("demo")
    assert "demo passphrase 'datanet-demo'" in result.stdout
    assert "not found" in result.stdout


def test_the_log_holds_no_secrets_or_record_contents(cli: Cli, tmp_path: Path) -> None:
    created = cli.ok("--json", "create", "clinic").json()
    cli.ok("import", "clinic", str(TRAIN_FILE))
    cli.run("list", env={"DATANET_PASSPHRASE_FILE": None, "DATANET_PASSPHRASE": "wrong one"})
    cli.ok("identity", "export", str(tmp_path / "b"), env={"DATANET_BACKUP_PASSPHRASE": "backup passphrase"})
    log = (cli.data_dir / "logs" / "datanet.log").read_text()
    assert "vault created" in log  # the log is being written
    assert stat.S_IMODE((cli.data_dir / "logs" / "datanet.log").stat().st_mode) == 0o600
    first_text = json.loads(TRAIN_FILE.read_text().splitlines()[0])["text"]
    for secret in (PASSPHRASE, "wrong one", "backup passphrase", created["recovery_code"], first_text):
        assert secret not in log


def test_a_damaged_shard_is_reported_by_check_and_does_not_hide_the_others(cli: Cli) -> None:
    cli.ok("create", "good")
    cli.ok("create", "bad")
    cli.ok("import", "bad", str(TRAIN_FILE))
    cli.ok("import", "good", str(TRAIN_FILE))
    keys = json.loads((cli.data_dir / "keys.json").read_text())
    shard_uuids = sorted(name.split("/")[1] for name in keys["secrets"] if name.startswith("shard/"))
    # Which file is "bad"? Damage the first page of each candidate in turn until `list` loses exactly one.
    for shard_uuid in shard_uuids:
        path = cli.data_dir / "shards" / f"{shard_uuid}.db"
        original = path.read_bytes()
        path.write_bytes(b"\0" * 4096 + original[4096:])
        listing = cli.ok("--json", "list").json()
        assert len(listing["datanets"]) == 1 and listing["unreadable"] == [str(path)]
        check = cli.run("--json", "vault", "check")
        assert check.code == 5
        doc = check.json()
        assert doc["ok"] is False
        assert [d["records"] for d in doc["datanets"]] == [480, None]
        assert "cannot be decrypted" in doc["datanets"][1]["problems"][0]
        assert path.read_bytes()[:4096] == b"\0" * 4096  # left as it was for the user to restore
        path.write_bytes(original)
    assert cli.ok("--json", "vault", "check").json()["ok"] is True


def test_a_passphrase_file_readable_by_others_is_refused(cli: Cli, tmp_path: Path) -> None:
    secret = Path(cli.env["DATANET_PASSPHRASE_FILE"])
    secret.chmod(0o644)
    result = cli.run("init")
    assert result.code == 3 and "chmod 600" in result.stderr
    assert not (cli.data_dir / "keys.json").exists()


def test_doctor_reports_the_machine_without_unlocking(headless_cli: Cli, cli: Cli) -> None:
    bare = headless_cli.run("--json", "doctor", env={"DATANET_PASSPHRASE_FILE": None})
    doc = bare.json()
    by_name = {c["name"]: c for c in doc["checks"]}
    assert bare.code == 1 and doc["ok"] is False  # no keyring and no passphrase: a headless node could not unlock
    assert "set DATANET_PASSPHRASE_FILE" in by_name["keyring"]["detail"]
    assert by_name["prover contribution"]["status"] == "ok" and by_name["sqlcipher"]["status"] == "ok"
    assert by_name["prover"]["status"] == "ok" and by_name["prover"]["detail"].startswith("native")
    fallback = headless_cli.run("--json", "doctor", env={"DATANET_PROVER": "groth16py"}).json()
    assert {c["name"]: c["detail"] for c in fallback["checks"]}["prover"].startswith("groth16py (DATANET_PROVER)")
    unknown = headless_cli.run("--json", "doctor", env={"DATANET_PROVER": "fast"}).json()
    assert {c["name"]: c["status"] for c in unknown["checks"]}["prover"] == "FAIL"
    ready = cli.ok("--json", "doctor").json()
    assert ready["ok"] is True
    assert {c["name"]: c["status"] for c in ready["checks"]}["keyring"] == "warn"  # a passphrase, not a keyring
    assert not (cli.data_dir / "keys.json").exists()  # doctor creates nothing


def test_the_data_directory_is_private_from_its_first_creation(headless_cli: Cli) -> None:
    assert not headless_cli.data_dir.exists()
    headless_cli.run("doctor")  # any first command: its log is the directory's first file
    assert stat.S_IMODE(headless_cli.data_dir.stat().st_mode) == 0o700


def test_a_new_passphrase_shorter_than_8_is_refused_from_every_source(headless_cli: Cli, tmp_path: Path) -> None:
    short = headless_cli.run("create", "clinic", env={"DATANET_PASSPHRASE": "short"})
    assert short.code == 3 and "at least 8" in short.stderr
    _assert_one_sentence(short.stderr)
    assert not (headless_cli.data_dir / "keys.json").exists()
    secret = tmp_path / "short-file"
    secret.write_text("2short\n")
    secret.chmod(0o600)
    from_file = headless_cli.run("create", "clinic", env={"DATANET_PASSPHRASE_FILE": str(secret)})
    assert from_file.code == 3 and "at least 8" in from_file.stderr
    headless_cli.ok("create", "clinic", env={"DATANET_PASSPHRASE": PASSPHRASE})
    change = headless_cli.run(
        "vault", "passphrase", env={"DATANET_PASSPHRASE": PASSPHRASE, "DATANET_NEW_PASSPHRASE": "tiny"}
    )
    assert change.code == 3 and "at least 8" in change.stderr
    backup = headless_cli.run(
        "identity",
        "export",
        str(tmp_path / "id.backup"),
        env={"DATANET_PASSPHRASE": PASSPHRASE, "DATANET_BACKUP_PASSPHRASE": "tiny"},
    )
    assert backup.code == 3 and "at least 8" in backup.stderr and not (tmp_path / "id.backup").exists()


def test_argon2_parameters_from_a_changed_keys_file_are_bounded(cli: Cli) -> None:
    cli.ok("create", "clinic")
    cli.ok("node", "stop")
    keys = cli.data_dir / "keys.json"
    doc = json.loads(keys.read_text())
    doc["master"]["passphrase"]["memory_kib"] = 64 << 20  # 64 GiB: an unlock would exhaust the machine
    keys.write_text(json.dumps(doc))
    result = cli.run("list")
    assert result.code == 1 and "Argon2 parameters out of bounds" in result.stderr
    _assert_one_sentence(result.stderr)
