"""Training a LoRA adapter on a Datanet, as a plain call: the settings (one list of them, with their defaults),
the base model for a Datanet's task, and the run itself in a child process (client/training/job.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from client.config import Config
from client.errors import ClientError
from client.training import adapters
from client.training.base_models import DEFAULT_FOR_TASK
from client.training.errors import TrainingError
from client.training.settings import TrainConfig
from storage.vault import Vault

# The settings a client may give (`datanet train`, the control API's `train`), each with its type.
SETTINGS: Final[dict[str, type]] = {
    "base": str,
    "epochs": int,
    "batch_size": int,
    "learning_rate": float,
    "seed": int,
    "threads": int,
    "dp_epsilon": float,
}
PROGRESS_FIELDS: Final = (
    "step",
    "total_steps",
    "epoch",
    "loss",
    "samples_per_s",
    "eta_s",
    "device",
    "evaluation",
    "dp_epsilon_spent",  # with DP: the privacy budget spent so far, every few steps
    "dp_epsilon_target",
)


def base_for(task: str, base: str | None) -> str:
    """The base model asked for, or the default one for the Datanet's task."""
    chosen = base or DEFAULT_FOR_TASK.get(task)
    if chosen is None:
        raise TrainingError(f"No base model serves the {task!r} task yet.")
    return chosen


def train(
    config: Config,
    vault: Vault,
    name: str,
    settings: Mapping[str, Any],
    *,
    eval_path: Path | None = None,
    fresh: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Train (or resume, or reuse a finished run with the same records and settings) and return the adapter id,
    whether it was reused, the training job id and the manifest; `Cancelled` (saying at which step its checkpoint
    is) when `stop` cancelled it."""
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("peft") is None:
        raise TrainingError("Training needs the `train` extra: pip install 'datanet-client[train]' (see packaging/).")
    from client.training.job import make_request, run

    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ClientError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
    given = {k: v for k, v in settings.items() if v is not None and k != "base"}
    with vault.open_shard(name) as shard:
        train_config = TrainConfig(base=base_for(shard.info.task, settings.get("base")), **given)
        request = make_request(config, shard, train_config, eval_path, adapters.manifest_key(vault))

    def report(event: dict[str, Any]) -> None:
        if progress is not None:
            progress({k: event[k] for k in PROGRESS_FIELDS if k in event})

    result = run(request, report, fresh=fresh, stop=stop)  # Cancelled (at a checkpoint) says at which step
    return {
        "adapter_id": result.adapter_id,
        "reused": result.reused,
        "training_job": result.job_id,
        "datanet": name,
        "manifest": result.manifest,
    }
