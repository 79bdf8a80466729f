"""What a training run is asked to do and what it reports: plain values, importable without torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from client.training.errors import TrainingError


@dataclass(frozen=True, slots=True)
class TrainConfig:
    base: str
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 2e-3
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    seed: int = 0
    threads: int = 1
    max_length: int = 64
    checkpoint_every: int = 10
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    steps: int
    resumed_from: int
    train_loss: float
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    dp_epsilon_spent: float | None
    device: str
    samples_per_s: float
    seconds: float
    checkpoint_discarded: bool = False


class Cancelled(TrainingError):
    pass
