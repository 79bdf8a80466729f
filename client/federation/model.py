"""The coordinator's side of the model (torch; run in the Flower ServerApp's process, never in the node): the
round's starting weights from the seeded base model, and each round's global weights written out as a PEFT
adapter folder that the node then stores with its lineage manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from client.federation import weights
from client.training import adapters
from client.training.base_models import MODELS, prepare, weights_hash
from client.training.errors import BaseModelUnavailable, TaskMismatch
from client.training.settings import TrainConfig


class RoundModel:
    """The base model with the federation's LoRA layers (A frozen at its seed) and head."""

    def __init__(self, base_name: str, labels: tuple[str, ...], config: TrainConfig, cache_dir: Path) -> None:
        import torch

        from client.training.trainer import load_model, trainable_state

        base = MODELS.get(base_name)
        if base is None:
            raise BaseModelUnavailable(f"Unknown base model {base_name!r}; known: {', '.join(MODELS)}.")
        if base.kind != "classifier":
            raise TaskMismatch("Federated rounds train classifiers only (an intent-classification Datanet).")
        torch.set_num_threads(config.threads)
        self.base = base
        self.labels = labels
        self.folder = prepare(base.name, cache_dir)
        self.config = config
        self.model, self.tokenizer = load_model(base, self.folder, config, len(labels))
        for name, param in self.model.named_parameters():
            if ".lora_A." in name:
                param.requires_grad_(False)
        self.initial = {name: t.numpy() for name, t in trainable_state(self.model).items()}
        self.names = tuple(sorted(self.initial))
        frozen = {name: p.detach().numpy() for name, p in self.model.named_parameters() if ".lora_A." in name}
        self.a_sha256 = weights.a_hash(frozen)

    def save(self, tensors: dict[str, weights.Array], folder: Path) -> Path:
        """The model with `tensors` as its trained weights, as a PEFT folder (`adapter_config.json` naming the
        base model by id, `adapter_model.safetensors`) in `folder`."""
        import torch

        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in tensors.items():
                named[name].copy_(torch.from_numpy(np.ascontiguousarray(tensor)))
        self.model.save_pretrained(folder)  # type: ignore[operator]
        adapters.rewrite_base_reference(folder, self.base.model_id)
        return folder

    def evaluate(self, rows: list[tuple[bytes, bytes]]) -> dict[str, float]:
        """Loss and accuracy of the model as it stands (the last `save`) on held-out records."""
        import torch

        from client.training import examples
        from client.training.trainer import evaluate, tokenize

        held, _ = examples.build(rows, self.base.kind, labels=self.labels)
        sequences = tokenize(self.tokenizer, held.texts, self.config.max_length)
        return evaluate(
            self.model, self.base.kind, sequences, held.label_ids, int(self.tokenizer.pad_token_id), torch.device("cpu")
        )

    def describe_base(self) -> dict[str, Any]:
        return {
            "name": self.base.name,
            "model_id": self.base.model_id,
            "weights_sha256": weights_hash(self.base.name, self.folder),
            "source": self.base.source,
        }


def write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    tmp.chmod(0o600)
    tmp.replace(path)
