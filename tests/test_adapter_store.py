"""The adapter store: manifests sealed under the vault's key and bound to their adapter, readable with the key,
never with another, not when moved to another adapter; an older plaintext manifest sealed when first read; an
export in clear. The PEFT files are stand-ins here (the store only hashes them): tests/test_training.py trains."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

from client.training import adapters
from client.training.errors import TrainingError

KEY = secrets.token_bytes(32)


def staged(tmp_path: Path, weights: bytes) -> Path:
    folder = tmp_path / f"staging-{secrets.token_hex(4)}"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def manifest(name: str) -> dict[str, Any]:
    return {"created_at": "2026-12-01T10:00:00Z", "datanet": {"name": name, "uuid": "u1"}, "labels": ["sepsis"]}


def test_a_stored_manifest_is_sealed_and_opens_only_with_the_vault_key(tmp_path: Path, caplog: Any) -> None:
    data = tmp_path / "data"
    info = adapters.store(staged(tmp_path, b"weights one"), data, manifest("oncology-ward"), KEY)
    assert sorted(p.name for p in info.path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.sealed",
    ]
    sealed = (info.path / "manifest.sealed").read_bytes()
    assert b"oncology" not in sealed and b"sepsis" not in sealed
    assert (info.path / "manifest.sealed").stat().st_mode & 0o777 == 0o600
    found = adapters.find(data, info.adapter_id[:8], KEY)
    assert found.manifest["datanet"]["name"] == "oncology-ward" and found.manifest["adapter_id"] == info.adapter_id
    assert [i.adapter_id for i in adapters.list_adapters(data, KEY)] == [info.adapter_id]

    other_key = secrets.token_bytes(32)
    with caplog.at_level(logging.WARNING, logger="client.training.adapters"):
        assert adapters.list_adapters(data, other_key) == []
    assert "does not open with this vault's key" in caplog.text and "oncology" not in caplog.text
    with pytest.raises(TrainingError, match="manifest is damaged or not this vault's; restore the folder"):
        adapters.find(data, info.adapter_id, other_key)
    assert (info.path / "manifest.sealed").read_bytes() == sealed  # a wrong key changes nothing


def test_a_sealed_manifest_moved_to_another_adapter_does_not_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = adapters.store(staged(tmp_path, b"weights one"), data, manifest("ward-a"), KEY)
    second = adapters.store(staged(tmp_path, b"weights two"), data, manifest("ward-b"), KEY)
    (second.path / "manifest.sealed").write_bytes((first.path / "manifest.sealed").read_bytes())
    with pytest.raises(TrainingError, match="damaged or not this vault's"):
        adapters.find(data, second.adapter_id, KEY)
    assert [i.manifest["datanet"]["name"] for i in adapters.list_adapters(data, KEY)] == ["ward-a"]


def test_an_older_plaintext_manifest_is_sealed_when_first_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = adapters.store(staged(tmp_path, b"weights one"), data, manifest("ward"), KEY)
    clear = json.dumps(info.manifest).encode()
    (info.path / "manifest.sealed").unlink()
    (info.path / "manifest.json").write_bytes(clear)  # as an earlier build kept it
    assert adapters.find(data, info.adapter_id, KEY).manifest == info.manifest
    assert sorted(p.name for p in info.path.iterdir())[-1] == "manifest.sealed"
    assert not (info.path / "manifest.json").exists()
    assert adapters.find(data, info.adapter_id, KEY).manifest == info.manifest


def test_the_same_adapter_again_keeps_its_first_manifest_and_an_export_is_in_clear(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = adapters.store(staged(tmp_path, b"weights one"), data, manifest("ward"), KEY)
    again = adapters.store(staged(tmp_path, b"weights one"), data, {**manifest("ward"), "created_at": "later"}, KEY)
    assert again.adapter_id == first.adapter_id and again.manifest == first.manifest
    target = adapters.export(adapters.find(data, first.adapter_id, KEY), tmp_path / "out")
    assert json.loads((target / "manifest.json").read_text()) == first.manifest
    assert sorted(p.name for p in target.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
