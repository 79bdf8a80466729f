"""The LoRA training loop: deterministic, checkpointed, resumable, cancellable, optionally differentially private.

Runs inside the training child process (client/training/job.py). Same seed, same thread count and same data give
a bitwise-identical adapter, whether or not the run was interrupted and resumed: the checkpoint holds the
trainable weights, the optimizer state, the RNG state and the step, and the data order of each epoch is derived
from (seed, epoch).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from client.training.base_models import BaseModel
from client.training.errors import TrainingError
from client.training.examples import Examples
from client.training.settings import Cancelled, TrainConfig, TrainOutcome

logger = logging.getLogger(__name__)
DP_REPORT_EVERY = 10  # steps between reports of the privacy budget spent (train.progress)

CHECKPOINT = "checkpoint.pt"
Progress = Callable[[dict[str, Any]], None]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(base: BaseModel, folder: Path, config: TrainConfig, num_labels: int | None) -> tuple[nn.Module, Any]:
    """The base model with fresh LoRA layers (and head), and its tokenizer. Seeds first: the head is random."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if base.kind == "classifier":
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=num_labels)
        task_type = TaskType.SEQ_CLS
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        task_type = TaskType.CAUSAL_LM
    lora = LoraConfig(
        task_type=task_type,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(base.target_modules),
    )
    return get_peft_model(model, lora), tokenizer


def tokenize(tokenizer: Any, texts: tuple[str, ...], max_length: int) -> list[list[int]]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]


def collate(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def loss_from_logits(
    kind: str, logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """One loss value per example (mean over its tokens for a language model)."""
    if kind == "classifier":
        assert labels is not None
        return F.cross_entropy(logits, labels, reduction="none")
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    token_loss = F.cross_entropy(logits[:, :-1, :].transpose(1, 2), targets, reduction="none", ignore_index=-100)
    counts = (targets != -100).sum(dim=1).clamp(min=1)
    return token_loss.sum(dim=1) / counts


def per_sample_loss(
    model: nn.Module,
    kind: str,
    ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor | None,
    logit_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    logits = model(input_ids=ids, attention_mask=mask).logits
    if logit_mask is not None:  # restricted softmax: labels this member never saw are left alone
        logits = logits + logit_mask
    return loss_from_logits(kind, logits, ids, mask, labels)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    kind: str,
    sequences: list[list[int]],
    label_ids: tuple[int, ...] | None,
    pad_id: int,
    device: torch.device,
    batch_size: int = 64,
) -> dict[str, float]:
    model.eval()
    losses: list[float] = []
    correct = 0
    for start in range(0, len(sequences), batch_size):
        ids, mask = collate(sequences[start : start + batch_size], pad_id, device)
        labels = None
        if label_ids is not None:
            labels = torch.tensor(label_ids[start : start + batch_size], dtype=torch.long, device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits  # one forward pass for loss and accuracy
        losses += loss_from_logits(kind, logits, ids, mask, labels).tolist()
        if kind == "classifier":
            assert labels is not None
            correct += int((logits.argmax(-1) == labels).sum())
    mean_loss = sum(losses) / max(len(losses), 1)
    metrics = {"loss": round(mean_loss, 6)}
    if kind == "classifier":
        metrics["accuracy"] = round(correct / max(len(sequences), 1), 6)
    else:
        metrics["perplexity"] = round(math.exp(min(mean_loss, 50.0)), 4)
    return metrics


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained tensors by name (with `freeze_a`: B and the head), as a federated round sends them."""
    return _trainable_state(model)


def _load_trainable(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    named = dict(model.named_parameters())
    wanted = {name for name, p in named.items() if p.requires_grad}
    if set(tensors) != wanted:
        raise TrainingError(
            "The round's weights do not fit this base model and adapter shape (another version of the client "
            "or another base model on the coordinator)."
        )
    with torch.no_grad():
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(named[name].shape):
                raise TrainingError(f"The round's weights have the wrong shape for {name}.")
            named[name].copy_(tensor)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Atomic: a half-written checkpoint never replaces a good one. A full disk says so in one sentence."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise TrainingError(
                f"No space left on the device for the training checkpoint in {path.parent}; free some space and "
                "run the same command again to resume from the last checkpoint."
            ) from exc
        raise


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint, or None; a damaged one is moved aside (training then starts over) and raises nothing."""
    if not path.exists():
        return None
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "step" not in payload or "trainable" not in payload:
            raise ValueError("missing fields")
        return payload
    except Exception as exc:  # torch raises many kinds of errors on a damaged file
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        logger.warning("checkpoint %s is damaged (%s); moved to %s, training starts over", path, exc, aside.name)
        return None


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def train(
    *,
    job_dir: Path,
    base: BaseModel,
    model_dir: Path,
    train_examples: Examples,
    eval_examples: Examples,
    config: TrainConfig,
    progress: Progress,
    should_stop: Callable[[], bool],
    initial: dict[str, torch.Tensor] | None = None,
    freeze_a: bool = False,
    restrict_labels: bool = False,
    check_model: Callable[[nn.Module], None] | None = None,
) -> tuple[nn.Module, TrainOutcome]:
    """Train (or resume) and return the trained PEFT model and what happened.

    A federated round (client/federation/) starts from the round's global weights (`initial`: trainable tensors by
    name) and trains LoRA's B matrices and the head only (`freeze_a`, FFA-LoRA): every member's A is the same
    seeded matrix, so the weighted mean of the members' B is exactly the mean of their updates B·A. With
    `restrict_labels` the softmax runs over the labels this member holds (FedRS's restricted softmax): a member
    whose records carry a few of the labels does not teach the shared head that the others never occur."""
    started = time.monotonic()
    torch.set_num_threads(config.threads)
    device = pick_device()
    labels = train_examples.labels
    model, tokenizer = load_model(base, model_dir, config, len(labels) if labels else None)
    if freeze_a:
        for name, param in model.named_parameters():
            if ".lora_A." in name:
                param.requires_grad_(False)
    if initial is not None:
        _load_trainable(model, initial)
    if check_model is not None:  # before any step: a federated round checks its frozen A is the coordinator's
        check_model(model)
    model.to(device)
    pad_id = int(tokenizer.pad_token_id)
    train_seqs = tokenize(tokenizer, train_examples.texts, config.max_length)
    eval_seqs = tokenize(tokenizer, eval_examples.texts, config.max_length)
    metrics_before = evaluate(model, base.kind, eval_seqs, eval_examples.label_ids, pad_id, device)

    logit_mask = None
    if restrict_labels and train_examples.label_ids is not None and labels:
        held = set(train_examples.label_ids)
        logit_mask = torch.tensor([0.0 if i in held else -1e4 for i in range(len(labels))], device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    dp = config.dp_epsilon is not None
    # DP sums per-example gradients (opacus' loss_reduction="sum"); AdamW is invariant to that scale.
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    n = len(train_seqs)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    privacy = None
    trainable_module: nn.Module = model
    if dp:
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        privacy = PrivacyEngine(accountant="rdp")
        model.train()  # opacus validates the module in training mode
        # The loader only tells opacus the sample rate (batch_size / n); batches are drawn below, by Poisson
        # sampling at that rate, as the accountant assumes.
        loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(
            TensorDataset(torch.arange(n)), batch_size=config.batch_size
        )
        trainable_module, optimizer, _, _ = _make_private(privacy, model, optimizer, loader, config)

    checkpoint_path = job_dir / CHECKPOINT
    had_checkpoint = checkpoint_path.exists()
    state = load_checkpoint(checkpoint_path)
    resumed_from = 0
    if state is not None:
        with torch.no_grad():
            named = dict(model.named_parameters())
            for name, tensor in state["trainable"].items():
                named[name].copy_(tensor.to(device))
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if privacy is not None and state.get("dp_history"):
            privacy.accountant.history = [tuple(h) for h in state["dp_history"]]
        resumed_from = int(state["step"])
        logger.info("resuming training at step %d of %d", resumed_from, total_steps)

    def checkpoint(step: int) -> None:
        payload: dict[str, Any] = {
            "step": step,
            "trainable": _trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            "dp_history": [list(h) for h in privacy.accountant.history] if privacy is not None else [],
        }
        save_checkpoint(checkpoint_path, payload)

    step = resumed_from
    loss_sum, loss_count = 0.0, 0
    timed_samples, timed_seconds = 0, 0.0
    dp_rng = torch.Generator().manual_seed(config.seed + 17 + resumed_from)
    for epoch in range(config.epochs):
        order = _epoch_order(n, config.seed, epoch)
        for batch_no in range(steps_per_epoch):
            global_step = epoch * steps_per_epoch + batch_no + 1
            if global_step <= resumed_from:
                continue
            if should_stop():
                checkpoint(step)
                raise Cancelled(f"Training cancelled at step {step} of {total_steps}; run it again to resume.")
            tick = time.perf_counter()
            if dp:  # Poisson sampling, as the privacy accounting assumes
                chosen = (torch.rand(n, generator=dp_rng) < config.batch_size / n).nonzero().flatten().tolist()
                indices = chosen or [order[batch_no % n]]
            else:
                indices = order[batch_no * config.batch_size : (batch_no + 1) * config.batch_size]
            trainable_module.train()
            ids, mask = collate([train_seqs[i] for i in indices], pad_id, device)
            labels_t = None
            if train_examples.label_ids is not None:
                labels_t = torch.tensor([train_examples.label_ids[i] for i in indices], dtype=torch.long, device=device)
            losses = per_sample_loss(trainable_module, base.kind, ids, mask, labels_t, logit_mask)
            loss = losses.sum() if dp else losses.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            step = global_step
            loss_sum += float(losses.detach().mean())
            loss_count += 1
            elapsed = time.perf_counter() - tick
            timed_samples += len(indices)
            timed_seconds += elapsed
            rate = timed_samples / timed_seconds if timed_seconds else 0.0
            update: dict[str, Any] = {
                "step": step,
                "total_steps": total_steps,
                "epoch": epoch + 1,
                "loss": round(float(losses.detach().mean()), 5),
                "samples_per_s": round(rate, 2),
                "eta_s": round((total_steps - step) * config.batch_size / rate, 1) if rate else None,
                "device": device.type,
                "evaluation": {"before": metrics_before},
            }
            if privacy is not None and (step % DP_REPORT_EVERY == 0 or step == total_steps):
                # the privacy budget spent so far (the accountant's sum over steps; a few ms, so not every step)
                update["dp_epsilon_spent"] = round(privacy.get_epsilon(config.dp_delta), 3)
                update["dp_epsilon_target"] = config.dp_epsilon
            progress(update)
            if step % config.checkpoint_every == 0 or step == total_steps:
                checkpoint(step)

    metrics_after = evaluate(model, base.kind, eval_seqs, eval_examples.label_ids, pad_id, device)
    progress(
        {
            "step": step,
            "total_steps": total_steps,
            "epoch": config.epochs,
            "loss": round(loss_sum / loss_count, 5) if loss_count else None,
            "samples_per_s": round(timed_samples / timed_seconds, 2) if timed_seconds else 0.0,
            "eta_s": 0.0,
            "device": device.type,
            "evaluation": {"before": metrics_before, "after": metrics_after},
        }
    )
    spent = privacy.get_epsilon(config.dp_delta) if privacy is not None else None
    if privacy is not None:
        _remove_dp_hooks(trainable_module)
    outcome = TrainOutcome(
        steps=step,
        resumed_from=resumed_from,
        train_loss=round(loss_sum / loss_count, 6) if loss_count else float("nan"),
        metrics_before=metrics_before,
        metrics_after=metrics_after,
        dp_epsilon_spent=round(spent, 4) if spent is not None else None,
        device=str(device),
        samples_per_s=round(timed_samples / timed_seconds, 2) if timed_seconds else 0.0,
        checkpoint_discarded=had_checkpoint and state is None,
        seconds=round(time.monotonic() - started, 2),
    )
    return model, outcome


def _make_private(
    privacy: Any, model: nn.Module, optimizer: torch.optim.Optimizer, loader: Any, config: TrainConfig
) -> tuple[nn.Module, Any, Any, Any]:
    module, dp_optimizer, dp_loader = privacy.make_private_with_epsilon(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        target_epsilon=config.dp_epsilon,
        target_delta=config.dp_delta,
        epochs=config.epochs,
        max_grad_norm=config.dp_max_grad_norm,
        loss_reduction="sum",
        grad_sample_mode="hooks",
    )
    return module, dp_optimizer, dp_loader, None


def _remove_dp_hooks(module: nn.Module) -> None:
    remove = getattr(module, "_close", None)
    if callable(remove):
        remove()


def describe_versions() -> dict[str, str]:
    import opacus
    import peft
    import transformers

    return {
        "torch": torch.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "opacus": opacus.__version__,
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
