"""Combining several contributors' adapters of one base model, exactly.

Averaging LoRA's A and B matrices separately is wrong (the product of means is not the mean of products), and
so is peft's linear `add_weighted_adapter`. Concatenation is exact: with A = [A_1; …; A_k] and
B = [w_1 s_1 B_1, …, w_k s_k B_k] (s_i = alpha_i / r_i), the merged delta B·A·1 equals Σ w_i s_i B_i A_i, the
weighted sum of the dense deltas. Classification heads are dense layers, merged apart as their weighted average.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from client.training import adapters
from client.training.adapters import AdapterInfo
from client.training.errors import TrainingError


def lora_modules(tensors: dict[str, torch.Tensor]) -> list[str]:
    return sorted(k[: -len(".lora_A.weight")] for k in tensors if k.endswith(".lora_A.weight"))


def dense_deltas(folder: Path) -> dict[str, torch.Tensor]:
    """Each adapted module's dense update s·B·A (what the adapter adds to the base weight)."""
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    config = adapters.read_peft_config(folder)
    scale = config["lora_alpha"] / config["r"]
    return {m: scale * tensors[f"{m}.lora_B.weight"] @ tensors[f"{m}.lora_A.weight"] for m in lora_modules(tensors)}


def merge(infos: list[AdapterInfo], weights: list[float], data_dir: Path, key: bytes) -> AdapterInfo:
    """One adapter whose delta is the weighted sum of the given ones' (ranks concatenated), stored with a
    manifest sealed under `key` (adapters.manifest_key) that names what it was merged from."""
    if len(infos) < 2:
        raise TrainingError("Merging needs at least two adapters.")
    for info in infos:
        adapters.verify(info)
    first = infos[0].manifest
    for info in infos[1:]:
        m = info.manifest
        if m["base_model"]["weights_sha256"] != first["base_model"]["weights_sha256"]:
            raise TrainingError(
                f"Adapter {info.adapter_id[:12]} was trained on another base model; only adapters "
                "of the same base model can be merged."
            )
        if m.get("labels") != first.get("labels"):
            raise TrainingError(f"Adapter {info.adapter_id[:12]} has other labels; classifier heads cannot be merged.")
    configs = [adapters.read_peft_config(i.path) for i in infos]
    tensors = [load_file(str(i.path / "adapter_model.safetensors")) for i in infos]
    modules = lora_modules(tensors[0])
    if any(lora_modules(t) != modules for t in tensors[1:]):
        raise TrainingError("The adapters adapt different modules; they cannot be merged.")

    merged: dict[str, torch.Tensor] = {}
    for module in modules:
        merged[f"{module}.lora_A.weight"] = torch.cat([t[f"{module}.lora_A.weight"] for t in tensors], dim=0)
        merged[f"{module}.lora_B.weight"] = torch.cat(
            [
                w * (c["lora_alpha"] / c["r"]) * t[f"{module}.lora_B.weight"]
                for w, c, t in zip(weights, configs, tensors, strict=True)
            ],
            dim=1,
        )
    heads = sorted(k for k in tensors[0] if ".lora_" not in k)
    for head in heads:  # dense layers (a classifier head): their weighted average
        merged[head] = sum(
            (w * t[head] for w, t in zip(weights, tensors, strict=True)), torch.zeros_like(tensors[0][head])
        )
    rank = sum(c["r"] for c in configs)
    config: dict[str, Any] = {
        **configs[0],
        "r": rank,
        "lora_alpha": rank,
        "rank_pattern": {},
        "alpha_pattern": {},
        "lora_dropout": 0.0,
    }

    staging = data_dir / adapters.ADAPTERS_DIR / f".merge-{time.time_ns()}"
    staging.mkdir(parents=True, mode=0o700)
    (staging / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(
        {k: v.contiguous() for k, v in merged.items()},
        str(staging / "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    manifest = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": first["task"],
        "labels": first.get("labels"),
        "base_model": first["base_model"],
        "datanet": {"name": "+".join(sorted({i.manifest["datanet"]["name"] for i in infos})), "uuid": None},
        "merged_from": [{"adapter_id": i.adapter_id, "weight": w} for i, w in zip(infos, weights, strict=True)],
        "trained_on": {
            "records": sum(i.manifest["trained_on"]["records"] for i in infos),
            "record_set_sha256": None,
            "batch_roots": sorted({r for i in infos for r in i.manifest["trained_on"]["batch_roots"]}),
        },
        "evaluation": {"source": "not evaluated (merged)", "records": 0, "before": {}, "after": {}},
        "dp": None,
    }
    return adapters.store(staging, data_dir, manifest, key)
