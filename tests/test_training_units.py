"""Training pieces that need no full run: checkpoint files on a full disk, base-model pins."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from client.training import base_models
from client.training.base_models import prepare, sha256_file
from client.training.errors import BaseModelUnavailable, TrainingError
from client.training.trainer import load_checkpoint, save_checkpoint


def test_a_full_disk_gives_one_sentence_and_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 10, "trainable": {"w": torch.ones(2)}})
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(TrainingError, match=r"No space left on the device .* run the same command again to resume"):
        save_checkpoint(path, {"step": 20, "trainable": {"w": torch.zeros(2)}})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))
    loaded = load_checkpoint(path)
    assert loaded is not None and loaded["step"] == 10


def test_a_tampered_cached_model_is_rebuilt_to_its_pin(tmp_path: Path) -> None:
    folder = prepare("tiny-classifier", tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    rebuilt = prepare("tiny-classifier", tmp_path)
    assert sha256_file(rebuilt / "model.safetensors") == base_models.MODELS["tiny-classifier"].weights_sha256


def test_a_packaged_model_that_does_not_match_its_pin_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the real weights")
    monkeypatch.setattr(base_models, "_minilm_dir", lambda: fake)
    with pytest.raises(BaseModelUnavailable, match="do not match their pin"):
        prepare("minilm-l6", tmp_path)


def test_an_unknown_base_model_is_named() -> None:
    with pytest.raises(BaseModelUnavailable, match="Unknown base model 'gpt-9'"):
        prepare("gpt-9", Path("/nonexistent"))
