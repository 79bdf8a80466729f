"""keys.json: wrapping, tamper evidence and file hygiene."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path

import pytest

from storage.errors import StorageError, WrongPassphrase
from storage.key_file import KeyFile
from storage.recovery_code import new_recovery_code
from tests.conftest import FAST_ARGON2


@pytest.fixture
def key_file(tmp_path: Path) -> KeyFile:
    return KeyFile.new(tmp_path)


def test_passphrase_wrap_round_trip_and_wrong_passphrase(key_file: KeyFile) -> None:
    master = secrets.token_bytes(32)
    key_file.wrap_with_passphrase(master, "correct horse", FAST_ARGON2)
    assert key_file.unwrap_with_passphrase("correct horse") == master
    with pytest.raises(WrongPassphrase, match="passphrase is wrong"):
        key_file.unwrap_with_passphrase("correct horse!")


def test_recovery_code_wrap_round_trip_and_foreign_code(key_file: KeyFile) -> None:
    master, code = secrets.token_bytes(32), new_recovery_code()
    key_file.wrap_with_recovery_code(master, code)
    assert key_file.unwrap_with_recovery_code(code) == master
    with pytest.raises(WrongPassphrase, match="another vault"):
        key_file.unwrap_with_recovery_code(new_recovery_code())


def test_secrets_are_bound_to_their_slot(key_file: KeyFile, tmp_path: Path) -> None:
    master = secrets.token_bytes(32)
    key_file.put_secret(master, "shard/a", b"A" * 32)
    key_file.put_secret(master, "shard/b", b"B" * 32)
    key_file.save()
    doc = json.loads((tmp_path / "keys.json").read_text())
    doc["secrets"]["shard/a"], doc["secrets"]["shard/b"] = doc["secrets"]["shard/b"], doc["secrets"]["shard/a"]
    (tmp_path / "keys.json").write_text(json.dumps(doc))
    swapped = KeyFile.load(tmp_path)
    with pytest.raises(StorageError, match="altered"):
        swapped.get_secret(master, "shard/a")


def test_saved_file_is_private_and_holds_no_secret_in_the_clear(key_file: KeyFile, tmp_path: Path) -> None:
    master, shard_key = secrets.token_bytes(32), secrets.token_bytes(32)
    key_file.set_verifier(master)
    key_file.wrap_with_passphrase(master, "pw-123456", FAST_ARGON2)
    key_file.put_secret(master, "shard/x", shard_key)
    key_file.save()
    path = tmp_path / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    for secret in (master, shard_key):
        assert secret not in raw
        assert secret.hex().encode() not in raw
    reloaded = KeyFile.load(tmp_path)
    assert reloaded.verifies(master)
    assert not reloaded.verifies(secrets.token_bytes(32))
    assert reloaded.get_secret(master, "shard/x") == shard_key


@pytest.mark.parametrize("content", [b"", b"{not json", b"[]", b'{"format": 99, "vault_id": "x"}'])
def test_damaged_key_file_is_reported_not_replaced(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "keys.json").write_bytes(content)
    with pytest.raises(StorageError, match=r"restore it from a backup|upgrade datanet"):
        KeyFile.load(tmp_path)
    assert (tmp_path / "keys.json").read_bytes() == content


def _moved_into(source: KeyFile, target: KeyFile, section: str, slot: str) -> KeyFile:
    """`target` saved and reloaded with `source`'s wrapped box copied into the same slot, byte for byte."""
    source.save()
    target.save()
    source_doc = json.loads(source.path.read_text())
    target_doc = json.loads(target.path.read_text())
    target_doc[section][slot] = source_doc[section][slot]
    target.path.write_text(json.dumps(target_doc))
    return KeyFile.load(target.path.parent)


# Both vaults share one master key, passphrase and recovery code, so only the vault id in the associated data can
# tell them apart: without it, each moved box below would open in the other vault.
def test_a_wrapped_secret_moved_into_another_vault_does_not_open_there(tmp_path: Path) -> None:
    master = secrets.token_bytes(32)
    a, b = KeyFile.new(_dir(tmp_path, "a")), KeyFile.new(_dir(tmp_path, "b"))
    a.put_secret(master, "shard/x", b"A" * 32)
    moved = _moved_into(a, b, "secrets", "shard/x")
    assert moved.vault_id != a.vault_id
    with pytest.raises(StorageError, match=r"'shard/x' in keys\.json was altered"):
        moved.get_secret(master, "shard/x")
    assert KeyFile.load(a.path.parent).get_secret(master, "shard/x") == b"A" * 32


def test_a_wrapped_master_key_moved_into_another_vault_does_not_unlock_it(tmp_path: Path) -> None:
    master, code = secrets.token_bytes(32), new_recovery_code()
    a, b = KeyFile.new(_dir(tmp_path, "a")), KeyFile.new(_dir(tmp_path, "b"))
    a.wrap_with_passphrase(master, "same passphrase", FAST_ARGON2)
    a.wrap_with_recovery_code(master, code)
    with pytest.raises(WrongPassphrase, match="passphrase is wrong"):
        _moved_into(a, b, "master", "passphrase").unwrap_with_passphrase("same passphrase")
    with pytest.raises(WrongPassphrase, match="another vault"):
        _moved_into(a, b, "master", "recovery").unwrap_with_recovery_code(code)
    reloaded = KeyFile.load(a.path.parent)
    assert reloaded.unwrap_with_passphrase("same passphrase") == reloaded.unwrap_with_recovery_code(code) == master


def _dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path
