"""Adapters on disk: the standard PEFT layout plus a provenance manifest, content-addressed.

    <data dir>/adapters/<adapter id>/
        adapter_config.json        PEFT's config, base_model_name_or_path = the base model's id (never a path)
        adapter_model.safetensors  the LoRA weights (and a classifier head when the task has one)
        manifest.sealed            provenance: base model hash, Datanet, labels, records, seed, hyper-parameters,
                                   versions, device, metrics, DP budget; JSON sealed under the vault secret
                                   "adapters" and bound to the adapter id (storage/sealed.py), since it names the
                                   Datanet and its labels (a plaintext manifest.json of an older version is sealed
                                   when first read)

adapter id = SHA-256 over the two PEFT files' names and hashes, so peft, OpenLoRA-style servers and vLLM load the
folder as it is, and the same training run gives the same id. An export (`datanet adapters export`) writes the
manifest in clear as manifest.json beside the PEFT files: what leaves is the user's choice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.training.base_models import sha256_file
from client.training.errors import AdapterNotFound, TrainingError
from storage import sealed
from storage.errors import StorageError

logger = logging.getLogger(__name__)
ADAPTERS_DIR = "adapters"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
SEALED_MANIFEST = "manifest.sealed"
MANIFEST = "manifest.json"  # the manifest in clear: in an export (and an earlier build's store)
KEY_NAME = "adapters"  # the vault secret the manifests are sealed under


def manifest_key(vault: Any) -> bytes:
    """The key this vault's adapter manifests are sealed under (made at first use)."""
    key: bytes = vault.key_for(KEY_NAME)
    return key


def _purpose(adapter_id: str) -> str:
    return f"adapter-manifest/{adapter_id}"


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    adapter_id: str
    path: Path
    manifest: dict[str, Any]


def content_id(folder: Path) -> tuple[str, dict[str, str]]:
    files = {name: sha256_file(folder / name) for name in PEFT_FILES}
    digest = hashlib.sha256("".join(f"{name}\0{files[name]}\n" for name in PEFT_FILES).encode()).hexdigest()
    return digest, files


def read_peft_config(folder: Path) -> dict[str, Any]:
    """An adapter's `adapter_config.json` (peft's layout), checked for what this client reads from it: `r` a whole
    number of at least 1, `lora_alpha` a number, `target_modules` a list of names. TrainingError in one sentence for
    anything else (a damaged file, or one an adapter from elsewhere brings: fuzz/, target peft_config)."""
    where = folder.name[:12]
    try:
        config = json.loads((folder / "adapter_config.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        raise TrainingError(f"Adapter {where}'s adapter_config.json is missing or not JSON.") from None
    if not isinstance(config, dict):
        raise TrainingError(f"Adapter {where}'s adapter_config.json is not a JSON object.")
    r, alpha, modules = config.get("r"), config.get("lora_alpha"), config.get("target_modules")
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise TrainingError(f"Adapter {where}'s adapter_config.json has no rank r of at least 1.")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        raise TrainingError(f"Adapter {where}'s adapter_config.json has no lora_alpha number.")
    if modules is not None and (not isinstance(modules, list) or not all(isinstance(m, str) for m in modules)):
        raise TrainingError(f"Adapter {where}'s adapter_config.json has target_modules that are not names.")
    return config


def rewrite_base_reference(folder: Path, model_id: str) -> None:
    """peft writes the local path of the base model; a shareable adapter names the model instead. peft also
    writes target_modules from a set, in an order that changes between processes: sort it, so the same training
    gives the same bytes."""
    config_path = folder / "adapter_config.json"
    config = read_peft_config(folder)
    config["base_model_name_or_path"] = model_id
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _seal(folder: Path, adapter_id: str, manifest: dict[str, Any], key: bytes) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    sealed.write(folder / SEALED_MANIFEST, key, text.encode(), _purpose(adapter_id))


def store(staging: Path, data_dir: Path, manifest: dict[str, Any], key: bytes) -> AdapterInfo:
    """Move a staged PEFT folder into the adapter store under its content id, with its manifest sealed."""
    adapter_id, files = content_id(staging)
    full = {"format": "datanet-adapter/1", "adapter_id": adapter_id, "files": files, **manifest}
    _seal(staging, adapter_id, full, key)
    for item in staging.iterdir():
        os.chmod(item, 0o600)
    target = data_dir / ADAPTERS_DIR / adapter_id
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(staging)  # the same adapter again: keep the first manifest (or this one, if that one is gone)
        kept = read_manifest(target, key)
        if kept is None:
            _seal(target, adapter_id, full, key)
        return AdapterInfo(adapter_id, target, kept or full)
    os.replace(staging, target)
    return AdapterInfo(adapter_id, target, full)


SHARED = "shared.sealed"  # the ids of the adapters this machine shares with members (`adapters share`)


def shared_ids(data_dir: Path, key: bytes) -> set[str]:
    path = data_dir / ADAPTERS_DIR / SHARED
    if not path.exists():
        return set()
    try:
        ids = json.loads(sealed.read(path, key, "adapters-shared"))
    except (StorageError, ValueError):
        logger.warning("the list of shared adapters does not open; nothing is shared until it is set again")
        return set()
    return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()


def set_shared(data_dir: Path, key: bytes, adapter_id: str, shared: bool) -> None:
    ids = shared_ids(data_dir, key)
    ids = ids | {adapter_id} if shared else ids - {adapter_id}
    (data_dir / ADAPTERS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    sealed.write(data_dir / ADAPTERS_DIR / SHARED, key, json.dumps(sorted(ids)).encode(), "adapters-shared")


def parse_manifest(data: bytes) -> dict[str, Any] | None:
    """A manifest's JSON, or None when it is not a JSON object (damaged, or foreign: found by fuzz/)."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return manifest if isinstance(manifest, dict) else None


def read_manifest(folder: Path, key: bytes) -> dict[str, Any] | None:
    """A stored adapter's manifest, or None when it does not open or parse (logged). A plaintext manifest.json of
    an older version is sealed now and removed."""
    sealed_path, clear = folder / SEALED_MANIFEST, folder / MANIFEST
    if not sealed_path.exists() and clear.exists():
        try:
            manifest = parse_manifest(clear.read_bytes())
        except OSError:
            manifest = None
        if manifest is not None:
            _seal(folder, folder.name, manifest, key)
            clear.unlink()
            logger.info("adapter %s: its manifest is sealed now", folder.name[:12])
        return manifest
    try:
        manifest = parse_manifest(sealed.read(sealed_path, key, _purpose(folder.name)))
    except StorageError as exc:
        logger.warning("adapter %s: its manifest does not open: %s", folder.name[:12], exc)
        return None
    return manifest


def _folders(data_dir: Path) -> list[Path]:
    root = data_dir / ADAPTERS_DIR
    return [
        folder
        for folder in (sorted(root.iterdir()) if root.exists() else [])
        if folder.is_dir() and ((folder / SEALED_MANIFEST).exists() or (folder / MANIFEST).exists())
    ]


def list_adapters(data_dir: Path, key: bytes) -> list[AdapterInfo]:
    """The adapters stored here; a folder whose manifest does not open or read is left out, and logged."""
    infos = []
    for folder in _folders(data_dir):
        manifest = read_manifest(folder, key)
        if manifest is None:
            logger.warning(
                "adapter %s left out: its manifest is damaged (restore the folder or remove it)", folder.name
            )
            continue
        infos.append(AdapterInfo(folder.name, folder, manifest))
    return sorted(infos, key=lambda info: str(info.manifest.get("created_at", "")))


def find_folder(data_dir: Path, prefix: str) -> Path:
    """The folder of the one adapter whose id starts with `prefix` (6 hex digits at least); no key needed."""
    matches = [folder for folder in _folders(data_dir) if folder.name.startswith(prefix.lower())]
    if len(prefix) < 6 or not matches:
        raise AdapterNotFound(f"No adapter with id {prefix!r}; `datanet adapters list` shows them (6+ hex digits).")
    if len(matches) > 1:
        raise AdapterNotFound(f"Several adapters start with {prefix}; give more digits.")
    return matches[0]


def find(data_dir: Path, prefix: str, key: bytes) -> AdapterInfo:
    folder = find_folder(data_dir, prefix)
    manifest = read_manifest(folder, key)
    if manifest is None:
        raise TrainingError(
            f"Adapter {folder.name[:12]}'s manifest is damaged or not this vault's; restore the folder from a backup "
            "or remove it."
        )
    return AdapterInfo(folder.name, folder, manifest)


def verify(info: AdapterInfo) -> None:
    """Check the files still hash to the adapter's id."""
    adapter_id, _ = content_id(info.path)
    if adapter_id != info.adapter_id:
        raise TrainingError(f"Adapter {info.adapter_id[:12]} was altered on disk (its files no longer match its id).")


def export(info: AdapterInfo, target: Path) -> Path:
    """The PEFT files and the manifest, in clear (manifest.json), into an empty or new folder."""
    verify(info)
    if target.exists() and any(target.iterdir()):
        raise TrainingError(f"{target} exists and is not empty; choose an empty or new folder.")
    target.mkdir(parents=True, exist_ok=True)
    for name in PEFT_FILES:
        shutil.copyfile(info.path / name, target / name)
    (target / MANIFEST).write_text(json.dumps(info.manifest, indent=2, sort_keys=True) + "\n")
    return target
