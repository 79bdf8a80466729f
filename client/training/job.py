"""A training job: run in a child process, with progress, cancellation, and resume after a crash.

The parent (the CLI today, the node's job journal later) reads the records from the vault and hands them to the
child over a pipe: the child never opens the vault, and no plaintext record touches the disk. The child trains,
checkpoints into `<data dir>/jobs/<job id>/`, and stores the adapter. A job's id is a hash of its inputs (Datanet,
records, base model, hyper-parameters), so running the same command again after a crash or a cancel resumes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from client import log_setup
from client.children import BACKGROUND_NICE
from client.config import Config
from client.importers import read_rows
from client.log_setup import log_path
from client.training import adapters, examples
from client.training.base_models import MODELS, prepare, sha256_file, weights_hash
from client.training.errors import BaseModelUnavailable, JobFailed, ShardTooSmall, TaskMismatch, TrainingError
from client.training.settings import Cancelled, TrainConfig
from storage.shard import Shard

logger = logging.getLogger(__name__)

JOBS_DIR = "jobs"
STATE = "state.json"
Rows = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class RoundFit:
    """A member's part of a federated round (client/federation/): start from the round's global weights (a
    safetensors file), train FFA-LoRA with the round's labels, write the reply's tensors (weights.to_wire) to
    `update` instead of storing an adapter."""

    round: int
    labels: tuple[str, ...]
    names: tuple[str, ...]  # the trainable tensors, in wire order
    a_sha256: str  # the coordinator's frozen A (weights.a_hash)
    initial: Path
    update: Path


@dataclass(frozen=True, slots=True)
class JobRequest:
    data_dir: Path
    cache_dir: Path
    log_file: Path | None
    datanet: dict[str, str]  # name, uuid, task
    config: TrainConfig
    train_rows: Rows = field(repr=False)
    eval_rows: Rows = field(repr=False)
    eval_source: str
    batch_roots: tuple[str, ...] = ()  # proven contribution batches the training records belong to
    log_json: bool = False  # the log's format ([log] format = "json")
    manifest_key: bytes = field(default=b"", repr=False)  # the adapter manifests' key (to the child by its pipe)
    round_fit: RoundFit | None = None  # a federated round's training, not a stored adapter

    @property
    def job_id(self) -> str:
        digest = hashlib.sha256()
        digest.update(
            json.dumps({"datanet": self.datanet["uuid"], "config": self.config.as_dict()}, sort_keys=True).encode()
        )
        if self.round_fit is not None:  # the same round's weights again resume the same job
            digest.update(f"round {self.round_fit.round} {self.round_fit.a_sha256}".encode())
            digest.update(sha256_file(self.round_fit.initial).encode())
        digest.update(examples.record_set_hash(r for r, _ in self.train_rows).encode())
        digest.update(examples.record_set_hash(r for r, _ in self.eval_rows).encode())
        return digest.hexdigest()[:20]

    @property
    def job_dir(self) -> Path:
        return self.data_dir / JOBS_DIR / self.job_id


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    adapter_id: str
    manifest: dict[str, Any]
    reused: bool


def make_request(
    config: Config, shard: Shard, train_config: TrainConfig, eval_path: Path | None, manifest_key: bytes
) -> JobRequest:
    """A job for a shard's records: the evaluation split is a public file, or a held-out slice of the shard."""
    info = shard.info
    rows = list(shard.iter_bodies())
    if eval_path is not None:
        eval_rows = read_rows(eval_path, task=info.task)
        eval_ids = {r for r, _ in eval_rows}
        train_rows = [row for row in rows if row[0] not in eval_ids]
        eval_source = f"file {eval_path.name} ({examples.record_set_hash(eval_ids)[:16]})"
    else:
        train_rows, eval_rows = examples.split_holdout(rows)
        eval_source = f"held-out {examples.HOLDOUT_PERCENT}% of the Datanet (by record id)"
    return JobRequest(
        data_dir=config.data_dir,
        cache_dir=config.cache_dir,
        log_file=log_path(config),
        log_json=config.log_format == "json",
        datanet={"name": info.name, "uuid": info.uuid, "task": info.task},
        config=train_config,
        train_rows=train_rows,
        eval_rows=eval_rows,
        eval_source=eval_source,
        batch_roots=tuple(root.hex() for root in shard.batch_roots({r for r, _ in train_rows})),
        manifest_key=manifest_key,
    )


def check_task(request: JobRequest) -> None:
    base = MODELS.get(request.config.base)
    if base is None:
        raise BaseModelUnavailable(f"Unknown base model {request.config.base!r}; known: {', '.join(MODELS)}.")
    if base.task != request.datanet["task"]:
        raise TaskMismatch(
            f"Datanet {request.datanet['name']!r} serves the {request.datanet['task']!r} task, but base model "
            f"{base.name} is for {base.task!r}; pick another --base."
        )


def _write_state(job_dir: Path, **fields: Any) -> None:
    path = job_dir / STATE
    state = json.loads(path.read_text()) if path.exists() else {}
    state.update(fields, updated_at=time.time())
    tmp = path.with_name(STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_state(job_dir: Path) -> dict[str, Any]:
    path = job_dir / STATE
    return json.loads(path.read_text()) if path.exists() else {}


# -- the child ---------------------------------------------------------------------------------------------


def _child_logging(log_file: Path | None, json_lines: bool) -> None:
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler = logging.NullHandler()  # no log file, or one that cannot be written: stay quiet
    if log_file is not None:
        try:
            log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError:
            pass
    handler.setFormatter(log_setup.formatter(json_lines))
    handler.addFilter(log_setup.AddressFilter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("client").setLevel(logging.INFO)
    # Deprecation notices from torch/transformers/peft/opacus go to the log, never abort a training run.
    warnings.resetwarnings()
    warnings.simplefilter("default")
    logging.captureWarnings(True)


def _child(request: JobRequest, conn: Connection, cancel: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it asks us to stop cleanly
    os.nice(BACKGROUND_NICE)  # training yields the CPU to the node and the desktop (alone: it trains as fast)
    _child_logging(request.log_file, request.log_json)
    try:
        conn.send(("done", _train_and_store(request, conn, cancel)))
    except Cancelled as exc:
        conn.send(("cancelled", str(exc)))
    except TrainingError as exc:
        logger.info("training failed: %s", exc, exc_info=True)
        conn.send(("error", str(exc), exc.exit_code))
    except (BrokenPipeError, EOFError):
        logger.warning("the parent of training job %s went away; the last checkpoint stays", request.job_id)
    except Exception as exc:
        logger.exception("training job %s failed", request.job_id)
        conn.send(("error", f"Training failed unexpectedly ({exc.__class__.__name__}); the log has details.", 1))


def _train_and_store(request: JobRequest, conn: Connection, cancel: Any) -> dict[str, Any]:
    from client.training.trainer import describe_versions, train

    base = MODELS[request.config.base]
    if request.round_fit is not None:
        return _fit_round(request, request.round_fit, conn, cancel)
    train_examples, train_ids = examples.build(request.train_rows, base.kind)
    examples.check_size(train_examples, base.kind)
    eval_examples, _ = examples.build(request.eval_rows, base.kind, labels=train_examples.labels)
    if len(eval_examples) == 0:
        raise ShardTooSmall("The evaluation split is empty; give --eval FILE or import more records.")
    model_dir = prepare(base.name, request.cache_dir)
    model, outcome = train(
        job_dir=request.job_dir,
        base=base,
        model_dir=model_dir,
        train_examples=train_examples,
        eval_examples=eval_examples,
        config=request.config,
        progress=lambda event: conn.send(("progress", event)),
        should_stop=cancel.is_set,
    )
    staging = request.job_dir / "adapter.staging"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)  # type: ignore[operator]
    adapters.rewrite_base_reference(staging, base.model_id)
    config = request.config
    manifest = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": base.task,
        "labels": list(train_examples.labels) if train_examples.labels else None,
        "base_model": {
            "name": base.name,
            "model_id": base.model_id,
            "weights_sha256": weights_hash(base.name, model_dir),
            "source": base.source,
        },
        "datanet": {"name": request.datanet["name"], "uuid": request.datanet["uuid"]},
        "trained_on": {
            "records": len(train_ids),
            "record_set_sha256": examples.record_set_hash(train_ids),
            "batch_roots": list(request.batch_roots),
        },
        "evaluation": {
            "source": request.eval_source,
            "records": len(eval_examples),
            "before": outcome.metrics_before,
            "after": outcome.metrics_after,
        },
        "seed": config.seed,
        "threads": config.threads,
        "hyperparameters": {k: v for k, v in config.as_dict().items() if k not in {"seed", "threads", "base"}},
        "versions": describe_versions(),
        "device": outcome.device,
        "training": {
            "steps": outcome.steps,
            "resumed_from_step": outcome.resumed_from,
            "train_loss": outcome.train_loss,
            "samples_per_s": outcome.samples_per_s,
            "seconds": outcome.seconds,
            "damaged_checkpoint_discarded": outcome.checkpoint_discarded,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
        "dp": None
        if config.dp_epsilon is None
        else {
            "epsilon_target": config.dp_epsilon,
            "epsilon_spent": outcome.dp_epsilon_spent,
            "delta": config.dp_delta,
            "max_grad_norm": config.dp_max_grad_norm,
            "accountant": "rdp",
        },
    }
    info = adapters.store(staging, request.data_dir, manifest, request.manifest_key)
    return {"adapter_id": info.adapter_id, "manifest": info.manifest}


def _fit_round(request: JobRequest, fit: RoundFit, conn: Connection, cancel: Any) -> dict[str, Any]:
    import numpy as np
    from safetensors.numpy import save_file
    from safetensors.torch import load_file

    from client.federation import weights
    from client.training.trainer import train, trainable_state

    base = MODELS[request.config.base]
    if base.kind != "classifier":
        raise TaskMismatch("Federated rounds train classifiers only (an intent-classification Datanet).")
    own = {json.loads(body).get("label") for _, body in (*request.train_rows, *request.eval_rows)}
    unknown = sorted(str(label) for label in own - set(fit.labels))
    if unknown:
        raise TaskMismatch(
            f"This member's records carry labels the round does not know ({', '.join(unknown)}); the coordinator's "
            "held-out set must cover every label."
        )
    train_examples, train_ids = examples.build(request.train_rows, base.kind, labels=fit.labels)
    examples.check_size(train_examples, base.kind)
    eval_examples, _ = examples.build(request.eval_rows, base.kind, labels=fit.labels)
    if len(eval_examples) == 0:
        raise ShardTooSmall("This member's held-out split is empty; import more records before joining a round.")

    def check(model: Any) -> None:
        state = {name: p.detach().cpu().numpy() for name, p in model.named_parameters() if ".lora_A." in name}
        if weights.a_hash(state) != fit.a_sha256:
            raise TrainingError(
                "This member's base model or LoRA initialisation differs from the coordinator's (another client "
                "version?); update the client and join again."
            )

    model, outcome = train(
        job_dir=request.job_dir,
        base=base,
        model_dir=prepare(base.name, request.cache_dir),
        train_examples=train_examples,
        eval_examples=eval_examples,
        config=request.config,
        progress=lambda event: conn.send(("progress", event)),
        should_stop=cancel.is_set,
        initial=load_file(str(fit.initial)),
        freeze_a=True,
        restrict_labels=True,
        check_model=check,
    )
    trained = {name: tensor.numpy() for name, tensor in trainable_state(model).items()}
    assert train_examples.label_ids is not None
    wire = weights.to_wire(trained, fit.names, train_examples.label_ids, len(fit.labels))
    tmp = fit.update.with_name(fit.update.name + ".tmp")
    save_file({f"{i:04d}": np.ascontiguousarray(t) for i, t in enumerate(wire)}, str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, fit.update)
    return {
        "update": str(fit.update),
        "examples": len(train_ids),
        "batch_roots": list(request.batch_roots),
        "dp_epsilon_spent": outcome.dp_epsilon_spent,
        "dp_delta": request.config.dp_delta if request.config.dp_epsilon is not None else None,
        "before": outcome.metrics_before,
        "after": outcome.metrics_after,
        "seconds": outcome.seconds,
    }


# -- the parent --------------------------------------------------------------------------------------------


def run(
    request: JobRequest,
    on_progress: Callable[[dict[str, Any]], None],
    *,
    fresh: bool = False,
    stop: threading.Event | None = None,
) -> JobResult:
    """Run (or resume) a training job in a child process; Ctrl-C (in the main thread) or `stop` (from any thread,
    the node's) cancels it with a checkpoint."""
    check_task(request)
    job_dir = request.job_dir
    job_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = read_state(job_dir)
    if fresh:
        for name in ("checkpoint.pt", STATE):
            (job_dir / name).unlink(missing_ok=True)
        state = {}
    elif (
        state.get("status") == "finished"
        and request.round_fit is None
        and (request.data_dir / adapters.ADAPTERS_DIR / state["adapter_id"]).exists()
    ):
        info = adapters.find(request.data_dir, state["adapter_id"], request.manifest_key)
        return JobResult(request.job_id, info.adapter_id, info.manifest, reused=True)
    elif state.get("status") == "running":
        logger.warning("job %s was left running by process %s; resuming it", request.job_id, state.get("pid"))

    context = multiprocessing.get_context("spawn")
    parent_conn, child_conn = context.Pipe()
    cancel = context.Event()
    process = context.Process(target=_child, args=(request, child_conn, cancel), daemon=True)
    process.start()
    child_conn.close()
    _write_state(
        job_dir,
        status="running",
        pid=process.pid,
        shard=request.datanet["uuid"],  # by uuid: a Datanet's name never lies on disk in clear
        base=request.config.base,
        started_at=time.time(),
    )
    outcome: tuple[Any, ...] | None = None

    def on_interrupt(signum: int, frame: object) -> None:
        if cancel.is_set():  # a second Ctrl-C: stop waiting for the checkpoint
            raise KeyboardInterrupt
        cancel.set()  # the child checkpoints at its next step and reports "cancelled"

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main else None
    try:
        while outcome is None:
            if stop is not None and stop.is_set():
                cancel.set()
            try:
                if not parent_conn.poll(0.5):
                    if not process.is_alive():
                        break
                    continue
                message = parent_conn.recv()
            except EOFError:
                break
            if message[0] == "progress":
                if message[1]["step"] % 10 == 0:
                    _write_state(job_dir, progress=message[1])
                on_progress(message[1])
            else:
                outcome = message
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
        parent_conn.close()
    if outcome is None:
        _write_state(job_dir, status="failed", exit_code=process.exitcode)
        raise JobFailed(
            f"The training process died (exit code {process.exitcode}); run the same command again "
            "to resume from its last checkpoint."
        )
    if outcome[0] == "cancelled":
        _write_state(job_dir, status="cancelled")
        raise Cancelled(outcome[1])
    if outcome[0] == "error":
        _write_state(job_dir, status="failed", error=outcome[1])
        error = TrainingError(outcome[1])
        error.exit_code = outcome[2]
        raise error
    result = outcome[1]
    if request.round_fit is not None:  # a round's reply: `manifest` is what the member sends and reports
        _write_state(job_dir, status="finished", adapter_id="")
        (job_dir / "checkpoint.pt").unlink(missing_ok=True)
        return JobResult(request.job_id, "", result, reused=False)
    _write_state(job_dir, status="finished", adapter_id=result["adapter_id"])
    (job_dir / "checkpoint.pt").unlink(missing_ok=True)
    return JobResult(request.job_id, result["adapter_id"], result["manifest"], reused=False)
