"""The CLI on a desktop with the real Secret Service: keyring unlock, a lost entry, a changed backend."""

from __future__ import annotations

import json
from pathlib import Path

from client.sample.build_sample import TRAIN_FILE
from storage.keystore import OsKeyring
from tests.conftest import Cli, snapshot


def test_keyring_unlocks_without_any_passphrase(desktop_cli: Cli) -> None:
    created = desktop_cli.ok("--json", "create", "clinic").json()
    assert "recovery_code" in created
    desktop_cli.ok("import", "clinic", str(TRAIN_FILE))
    status = desktop_cli.ok("--json", "vault", "status").json()
    assert status["keyring"] == "SecretService.Keyring" and status["passphrase"] is False
    assert status["unlocked_with"] == "keyring"
    keys = json.loads((desktop_cli.data_dir / "keys.json").read_text())
    assert keys["master"]["keyring"]["backend"] == "keyring.backends.SecretService.Keyring"


def test_lost_keyring_entry_is_explained_and_recovered(
    desktop_cli: Cli, secret_service: OsKeyring, tmp_path: Path
) -> None:
    code = desktop_cli.ok("--json", "create", "clinic").json()["recovery_code"]
    desktop_cli.ok("import", "clinic", str(TRAIN_FILE))
    vault_id = json.loads((desktop_cli.data_dir / "keys.json").read_text())["vault_id"]
    desktop_cli.ok("node", "stop")  # the node that unlocked the vault stops (a reboot, say)
    secret_service.delete(f"vault-{vault_id}")  # the keyring was reset
    before = snapshot(desktop_cli.data_dir)
    result = desktop_cli.run("list")
    assert result.code == 3
    assert "The keyring has no key for this vault" in result.stderr and "datanet vault recover" in result.stderr
    assert "Traceback" not in result.stderr
    assert desktop_cli.run("create", "other").code == 3  # no fresh vault is made over the old one
    assert snapshot(desktop_cli.data_dir) == before

    code_file = tmp_path / "code"
    code_file.write_text(code)
    desktop_cli.ok("vault", "recover", "--code-file", str(code_file))
    assert desktop_cli.ok("--json", "records", "clinic", "count").json()["records"] == 480
    secret_service.delete(f"vault-{vault_id}")


def test_keyring_backend_gone_is_named_and_changes_nothing(desktop_cli: Cli) -> None:
    desktop_cli.ok("create", "clinic")
    desktop_cli.ok("import", "clinic", str(TRAIN_FILE))
    before = snapshot(desktop_cli.data_dir)
    result = desktop_cli.run("list", env={"DBUS_SESSION_BUS_ADDRESS": None})  # e.g. an SSH login, no D-Bus
    assert result.code == 3
    assert "kept in the keyring SecretService.Keyring, which is not available now" in result.stderr
    assert snapshot(desktop_cli.data_dir) == before


def test_a_passphrase_can_be_added_as_a_fallback(desktop_cli: Cli) -> None:
    desktop_cli.ok("create", "clinic")
    desktop_cli.ok("vault", "passphrase", env={"DATANET_NEW_PASSPHRASE": "fallback passphrase"})
    headless = {"DBUS_SESSION_BUS_ADDRESS": None, "DATANET_PASSPHRASE": "fallback passphrase"}
    status = desktop_cli.ok("--json", "vault", "status", env=headless).json()
    assert status["unlocked_with"] == "passphrase"
    desktop_cli.ok("vault", "passphrase", "--remove")
    assert desktop_cli.run("list", env=headless).code == 3
