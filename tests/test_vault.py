"""The vault never loses data to a key problem, and its files hold no plaintext."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from storage.errors import (
    KeyFileMissing,
    KeyringChanged,
    KeyringKeyMissing,
    ShardExists,
    ShardNotFound,
    VaultExists,
    VaultLocked,
    VaultNotFound,
    WrongPassphrase,
)
from storage.key_file import KeyFile
from storage.keystore import MemoryKeyStore, OsKeyring
from storage.shard import NewRecord
from storage.vault import Vault
from tests.conftest import FAST_ARGON2, snapshot

MARKER = "PATIENT-MARKER-7f3a9c must never appear on disk"


def _record(text: str, source: str = "test") -> NewRecord:
    body = json.dumps({"text": text}, separators=(",", ":")).encode()
    return NewRecord(hashlib.sha256(body).digest(), body, source)


def _passphrase_vault(data_dir: Path) -> tuple[Vault, str]:
    return Vault.create(data_dir, keystore=None, passphrase="open sesame", argon2=FAST_ARGON2)


def _with_records(vault: Vault, n: int = 5) -> None:
    with vault.create_shard("clinic", "text") as shard:
        shard.add_records([_record(f"{MARKER} #{i}") for i in range(n)])


def test_created_vault_unlocks_with_keyring_and_keeps_records(data_dir: Path, memory_keystore: MemoryKeyStore) -> None:
    vault, code = Vault.create(data_dir, keystore=memory_keystore, passphrase=None)
    _with_records(vault)
    reopened = Vault.unlock(data_dir, keystore=memory_keystore)
    assert reopened.unlocked_with == "keyring"
    with reopened.open_shard("clinic") as shard:
        assert shard.count() == 5
    assert len(code.replace("-", "")) == 36


def test_files_are_private(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for path in [data_dir / "keys.json", *(data_dir / "shards").glob("*.db")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_no_plaintext_in_the_main_file_or_the_wal(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    with vault.create_shard("clinic", "text") as shard:
        shard.add_records([_record(f"{MARKER} #{i}") for i in range(200)])
        wal = shard.info.path.with_name(shard.info.path.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0  # the WAL is searched while it holds the records
        files = {p.name: p.read_bytes() for p in (data_dir / "shards").iterdir()}
    files["keys.json"] = (data_dir / "keys.json").read_bytes()
    for name, content in files.items():
        assert MARKER.encode() not in content, name
        assert b"clinic" not in content, name  # Datanet names are encrypted too


def test_wrong_passphrase_leaves_every_file_identical(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    before = snapshot(data_dir)
    with pytest.raises(WrongPassphrase, match="wrong"):
        Vault.unlock(data_dir, keystore=None, passphrase=lambda: "open sesame?")
    assert snapshot(data_dir) == before


def test_no_passphrase_available_is_a_clear_lock_not_a_new_vault(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    before = snapshot(data_dir)
    with pytest.raises(VaultLocked, match="DATANET_PASSPHRASE_FILE"):
        Vault.unlock(data_dir, keystore=None)
    assert snapshot(data_dir) == before


def test_missing_keyring_entry_leaves_files_and_recovery_works(data_dir: Path, memory_keystore: MemoryKeyStore) -> None:
    vault, code = Vault.create(data_dir, keystore=memory_keystore, passphrase=None)
    _with_records(vault)
    before = snapshot(data_dir)
    memory_keystore.delete(f"vault-{KeyFile.load(data_dir).vault_id}")
    with pytest.raises(KeyringKeyMissing, match="recovery code"):
        Vault.unlock(data_dir, keystore=memory_keystore)
    with pytest.raises(VaultExists):
        Vault.create(data_dir, keystore=memory_keystore, passphrase=None)
    assert snapshot(data_dir) == before
    recovered = Vault.recover(data_dir, code, keystore=memory_keystore, new_passphrase=None)
    with recovered.open_shard("clinic") as shard:
        assert shard.count() == 5
    assert Vault.unlock(data_dir, keystore=memory_keystore).unlocked_with == "keyring"


def test_changed_keyring_backend_is_named_and_changes_nothing(data_dir: Path) -> None:
    desktop = MemoryKeyStore("keyring.backends.SecretService.Keyring")
    vault, _ = Vault.create(data_dir, keystore=desktop, passphrase=None)
    _with_records(vault)
    before = snapshot(data_dir)
    with pytest.raises(KeyringChanged, match=r"SecretService\.Keyring.*kwallet"):
        Vault.unlock(data_dir, keystore=MemoryKeyStore("keyring.backends.kwallet.DBusKeyring"))
    with pytest.raises(KeyringChanged, match="not available now"):
        Vault.unlock(data_dir, keystore=None)
    assert snapshot(data_dir) == before


def test_passphrase_is_the_fallback_when_the_keyring_is_gone(data_dir: Path) -> None:
    desktop = MemoryKeyStore("keyring.backends.SecretService.Keyring")
    vault, _ = Vault.create(data_dir, keystore=desktop, passphrase=None)
    vault.set_passphrase("fallback pass", FAST_ARGON2)
    assert Vault.unlock(data_dir, keystore=None, passphrase=lambda: "fallback pass").unlocked_with == "passphrase"


def test_changing_the_passphrase_rewraps_without_touching_shards(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    shard_files = {p: p.read_bytes() for p in (data_dir / "shards").glob("*.db")}
    vault.set_passphrase("new secret words", FAST_ARGON2)
    with pytest.raises(WrongPassphrase):
        Vault.unlock(data_dir, keystore=None, passphrase=lambda: "open sesame")
    reopened = Vault.unlock(data_dir, keystore=None, passphrase=lambda: "new secret words")
    assert {p: p.read_bytes() for p in shard_files} == shard_files
    with reopened.open_shard("clinic") as shard:
        assert shard.count() == 5


def test_the_only_unlock_method_cannot_be_removed(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    with pytest.raises(VaultLocked, match="only unlock method"):
        vault.set_passphrase(None)


def test_recover_with_a_new_passphrase(data_dir: Path) -> None:
    _, code = _passphrase_vault(data_dir)
    Vault.recover(data_dir, code, keystore=None, new_passphrase="after recovery", argon2=FAST_ARGON2)
    assert Vault.unlock(data_dir, keystore=None, passphrase=lambda: "after recovery")


def test_missing_key_file_with_shards_refuses_to_create(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    (data_dir / "keys.json").rename(data_dir.parent / "keys.json.moved")
    before = snapshot(data_dir)
    with pytest.raises(KeyFileMissing, match=r"restore keys\.json"):
        Vault.unlock(data_dir, keystore=None, passphrase=lambda: "open sesame")
    with pytest.raises(KeyFileMissing):
        Vault.create(data_dir, keystore=None, passphrase="x" * 10, argon2=FAST_ARGON2)
    assert snapshot(data_dir) == before


def test_no_vault_yet(data_dir: Path) -> None:
    with pytest.raises(VaultNotFound):
        Vault.unlock(data_dir, keystore=None)
    assert not data_dir.exists()


def test_a_replaced_shard_file_is_reported_and_left_alone(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    with vault.create_shard("other", "text") as other:
        other.add_records([_record("other")])
        other_path = other.info.path
    with vault.open_shard("clinic") as shard:
        clinic_path = shard.info.path
    for suffix in ("-wal", "-shm"):
        for base in (clinic_path, other_path):
            base.with_name(base.name + suffix).unlink(missing_ok=True)
    clinic_path.write_bytes(other_path.read_bytes())  # someone copied the wrong file over it
    before = clinic_path.read_bytes()
    with pytest.raises(ShardNotFound, match="1 shard file"):
        vault.open_shard("clinic")
    (broken,) = vault.scan_shards()[1]
    assert broken.path == clinic_path
    assert "cannot be decrypted with its key" in broken.reason and "left untouched" in broken.reason
    assert clinic_path.read_bytes() == before


def test_shard_names_are_unique_and_validated(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    vault.create_shard("Clinic", "text").close()
    with pytest.raises(ShardExists):
        vault.create_shard("clinic", "text")
    with pytest.raises(ShardNotFound, match="datanet list"):
        vault.open_shard("nope")
    for bad in ("", "../escape", "a" * 65, "with space"):
        with pytest.raises(Exception, match="not a valid Datanet name"):
            vault.create_shard(bad, "text")
    assert [info.name for info in vault.list_shards()] == ["Clinic"]


def test_rekey_rotates_the_database_key(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    shard_uuid = vault.list_shards()[0].uuid
    old_key = vault.get_secret(f"shard/{shard_uuid}")
    vault.rekey_shard("clinic")
    new_key = vault.get_secret(f"shard/{shard_uuid}")
    assert new_key is not None and new_key != old_key
    assert vault.get_secret(f"shard/{shard_uuid}/next") is None
    reopened = Vault.unlock(data_dir, keystore=None, passphrase=lambda: "open sesame")
    with reopened.open_shard("clinic") as shard:
        assert shard.count() == 5
        assert shard.check().ok


def test_rekey_interrupted_after_the_file_changed_is_finished_on_next_open(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    _with_records(vault)
    shard_uuid = vault.list_shards()[0].uuid
    new_key = os.urandom(32)
    # What rekey_shard does before a crash: record the next key, re-encrypt the file; then the process dies.
    vault.put_secret(f"shard/{shard_uuid}/next", new_key)
    with vault.open_shard("clinic") as shard:
        shard.rekey(new_key)
    reopened = Vault.unlock(data_dir, keystore=None, passphrase=lambda: "open sesame")
    with reopened.open_shard("clinic") as shard:
        assert shard.count() == 5
    assert reopened.get_secret(f"shard/{shard_uuid}") == new_key
    assert reopened.get_secret(f"shard/{shard_uuid}/next") is None


def test_real_secret_service_round_trip(data_dir: Path, secret_service: OsKeyring) -> None:
    vault, code = Vault.create(data_dir, keystore=secret_service, passphrase=None)
    _with_records(vault)
    assert Vault.unlock(data_dir, keystore=secret_service).unlocked_with == "keyring"
    entry = f"vault-{KeyFile.load(data_dir).vault_id}"
    secret_service.delete(entry)
    with pytest.raises(KeyringKeyMissing):
        Vault.unlock(data_dir, keystore=secret_service)
    Vault.recover(data_dir, code, keystore=secret_service, new_passphrase=None)
    with Vault.unlock(data_dir, keystore=secret_service).open_shard("clinic") as shard:
        assert shard.count() == 5
    secret_service.delete(entry)


def test_a_known_name_opens_one_file_and_an_unknown_one_is_found_by_a_scan(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault, _ = Vault.create(data_dir, keystore=None, passphrase="pw", argon2=FAST_ARGON2)
    for name in ("alpha", "beta", "gamma", "delta"):
        vault.create_shard(name, "text").close()
    opened: list[str] = []
    real = Vault._open_by_uuid

    def counting(self: Vault, shard_uuid: str, kf: KeyFile | None = None) -> Any:
        opened.append(shard_uuid)
        return real(self, shard_uuid, kf)

    monkeypatch.setattr(Vault, "_open_by_uuid", counting)
    with vault.open_shard("gamma") as shard:  # created by this process: known
        gamma = shard.info.uuid
    assert opened == [gamma]

    other = Vault.unlock(data_dir, keystore=None, passphrase=lambda: "pw")  # another process, as it were
    other.create_shard("epsilon", "text").close()
    opened.clear()
    with vault.open_shard("epsilon") as shard:  # unknown here: a scan finds it (learning the names before it)
        assert shard.info.name == "epsilon"
    assert 1 <= len(opened) <= 5
    with vault.open_shard("beta"):  # known now, whichever side of epsilon the scan found it
        pass
    opened.clear()
    with vault.open_shard("beta"), vault.open_shard("epsilon"):
        assert len(opened) == 2
    with pytest.raises(ShardNotFound, match="did you mean 'beta'"):
        vault.open_shard("BETA")


def test_a_stale_name_index_never_opens_another_shard(data_dir: Path) -> None:
    vault, _ = Vault.create(data_dir, keystore=None, passphrase="pw", argon2=FAST_ARGON2)
    vault.create_shard("alpha", "text").close()
    vault.create_shard("beta", "text").close()
    with vault.open_shard("beta") as beta:
        beta_uuid = beta.info.uuid
    vault._names["alpha"] = beta_uuid  # as if the index were stale (a name now on another file)
    with vault.open_shard("alpha") as shard:
        assert shard.info.name == "alpha" and shard.info.uuid != beta_uuid


def test_a_named_key_is_made_once_and_every_unlock_of_the_vault_gets_the_same(data_dir: Path) -> None:
    vault, _ = _passphrase_vault(data_dir)
    made = vault.key_for("journal")
    assert len(made) == 32 and vault.key_for("journal") == made and vault.key_for("adapters") != made
    again = Vault.unlock(data_dir, keystore=None, passphrase=lambda: "open sesame")
    assert again.key_for("journal") == made and again.get_secret("journal") == made
    on_disk = (data_dir / "keys.json").read_bytes()
    assert made not in on_disk and made.hex().encode() not in on_disk
