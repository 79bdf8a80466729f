"""Benchmark: the project's training job against a plain peft loop on the same model, batches and threads.

Both train a LoRA adapter (r=8 on query/value, plus the classifier head) on all-MiniLM-L6-v2 with the sample
Datanet, batch 16, AdamW, the same number of steps, in separate processes, interleaved round by round. The
project side is the real job: a child process that reports progress over a pipe, writes its state file and
checkpoints every 10 steps; its step time is measured in the parent, between the first and the last progress
message it receives. The reference is a textbook peft loop (tokenizer padding, `model(**batch, labels=...)`),
timed the same way. The same again with differential privacy on (opacus, epsilon 8), against a plain opacus
loop. Also printed: samples/s, adapter size, peak memory.

Run: python bench/training.py [--threads N] [--rounds R] [--epochs E]. The last line is the headline figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from client.sample.build_sample import EVAL_FILE, TRAIN_FILE

BATCH = 16
LR = 2e-3


def _rows(path: Path) -> list[tuple[bytes, bytes]]:
    from client.importers import read_rows

    return read_rows(path)


def project_run(threads: int, epochs: int, dp: float | None, workdir: Path) -> dict[str, Any]:
    """The real training job (child process, pipe, state file, checkpoints); step times seen by the parent."""
    from client.training.job import JobRequest, run
    from client.training.settings import TrainConfig

    stamps: list[float] = []
    request = JobRequest(
        data_dir=workdir,
        cache_dir=workdir / "cache",
        log_file=None,
        datanet={"name": "bench", "uuid": os.urandom(8).hex(), "task": "intent-classification"},
        config=TrainConfig(
            base="minilm-l6", epochs=epochs, batch_size=BATCH, learning_rate=LR, threads=threads, dp_epsilon=dp
        ),
        train_rows=_rows(TRAIN_FILE),
        eval_rows=_rows(EVAL_FILE),
        eval_source="sample eval split",
    )
    result = run(request, lambda event: stamps.append(time.perf_counter()))
    adapter = workdir / "adapters" / result.adapter_id
    size = sum((adapter / name).stat().st_size for name in ("adapter_config.json", "adapter_model.safetensors"))
    return {
        "step_s": (stamps[-1] - stamps[0]) / (len(stamps) - 1),
        "steps": len(stamps),
        "accuracy": result.manifest["evaluation"]["after"]["accuracy"],
        "adapter_bytes": size,
        "peak_rss_mb": result.manifest["training"]["peak_rss_mb"],
        "epsilon": (result.manifest["dp"] or {}).get("epsilon_spent"),
    }


def _reference_child(threads: int, epochs: int, dp: float | None, conn: Any) -> None:
    """A textbook peft (and opacus) training loop; reports a timestamp per step over the pipe."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from client.training.base_models import prepare

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = [json.loads(line) for line in TRAIN_FILE.read_text().splitlines()]
    labels = sorted({r["label"] for r in rows})
    folder = prepare("minilm-l6", Path(tempfile.gettempdir()))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(labels))
    model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "value"]
        ),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    texts = [r["text"] for r in rows]
    targets = torch.tensor([labels.index(r["label"]) for r in rows])
    n = len(rows)

    def batches() -> Any:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).tolist()
            for start in range(0, n, BATCH):
                yield order[start : start + BATCH]

    if dp is not None:
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        model.train()
        engine = PrivacyEngine(accountant="rdp")
        loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=BATCH)
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=dp,
            target_delta=1e-5,
            epochs=epochs,
            max_grad_norm=1.0,
            loss_reduction="sum",
            grad_sample_mode="hooks",
        )

        def dp_batches() -> Any:
            for _ in range(epochs):
                for (idx,) in loader:
                    if len(idx):
                        yield idx.tolist()

        source = dp_batches()
    else:
        source = batches()
    model.train()
    for indices in source:
        enc = tokenizer([texts[i] for i in indices], padding=True, truncation=True, max_length=64, return_tensors="pt")
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        loss = torch.nn.functional.cross_entropy(out.logits, targets[indices], reduction="sum" if dp else "mean")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        conn.send(("step", len(indices)))
    conn.send(("done", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def reference_run(threads: int, epochs: int, dp: float | None) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_reference_child, args=(threads, epochs, dp, child))
    process.start()
    child.close()
    stamps: list[float] = []
    peak = 0.0
    while True:
        kind, value = parent.recv()
        if kind == "done":
            peak = value
            break
        stamps.append(time.perf_counter())
    process.join()
    return {"step_s": (stamps[-1] - stamps[0]) / (len(stamps) - 1), "steps": len(stamps), "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print(
        f"MiniLM-L6 + LoRA r=8, batch {BATCH}, {args.threads} thread(s), {args.epochs} epochs of 480 samples, "
        f"{args.rounds} rounds interleaved"
    )
    results: dict[str, list[dict[str, Any]]] = {"project": [], "reference": [], "project dp": [], "reference dp": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            order = ["project", "reference"] if round_no % 2 == 0 else ["reference", "project"]
            for dp in (None, 8.0):
                for side in order:
                    key = side + (" dp" if dp else "")
                    workdir = Path(tmp) / f"{key.replace(' ', '-')}-{round_no}"
                    if side == "project":
                        results[key].append(project_run(args.threads, args.epochs, dp, workdir))
                    else:
                        results[key].append(reference_run(args.threads, args.epochs, dp))
                    r = results[key][-1]
                    print(f"round {round_no + 1} {key:<13} {r['step_s'] * 1000:7.1f} ms/step over {r['steps']} steps")

    def med(key: str, field: str = "step_s") -> float:
        return float(statistics.median(r[field] for r in results[key]))

    project, reference = med("project"), med("reference")
    project_dp, reference_dp = med("project dp"), med("reference dp")
    last = results["project"][-1]
    print(
        f"project:   {project * 1000:.1f} ms/step, {BATCH / project:.1f} samples/s, "
        f"eval accuracy {last['accuracy']:.3f}, peak RSS {last['peak_rss_mb']:.0f} MB"
    )
    print(
        f"reference: {reference * 1000:.1f} ms/step, {BATCH / reference:.1f} samples/s, "
        f"peak RSS {results['reference'][-1]['peak_rss_mb']:.0f} MB"
    )
    print(
        f"with DP (epsilon 8): project {project_dp * 1000:.1f} ms/step, reference {reference_dp * 1000:.1f} ms/step, "
        f"ratio {project_dp / reference_dp:.3f}; epsilon spent {results['project dp'][-1]['epsilon']}"
    )
    print(f"adapter size: {last['adapter_bytes'] / 1000:.1f} KB")
    print(f"ratio step/reference: {project / reference:.3f}")


if __name__ == "__main__":
    main()
