"""Benchmark: one federated round against the same training run on one machine (not a test).

Five real nodes (`datanet node run` processes, real vaults, libp2p on 127.0.0.1): a coordinator and three members
of the sample Datanet split three ways by intent (the front desk, the clinic, the office: tests/test_federation.py),
and a node holding the union of the three. The round is the product: the coordinator's Flower SuperLink (TLS,
node keys), each member's guarded SuperNode, SecAgg+ (four exchanges), each member's LoRA training of MiniLM on its
share (FFA-LoRA, 3 epochs), the aggregation, evaluation and the round's adapter stored. It is timed from the moment
the third member is admitted to the coordinator's job ending. The reference is a `train` job of the same base
model and epochs on the union node (its own learning rate: a round's 0.01 is for FFA-LoRA), timed from queued to
done; both sides load the model, evaluate on the held-out file and store an adapter.

Each member trains with one thread, as does the reference; on this two-core machine the three members share two
cores (on three machines each would have its own). The model cache is shared, so neither side pays for preparing
MiniLM. Run: python bench/federation.py [--repeat N]. The last line is the headline (target <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.control import Node  # noqa: E402  (the same node process as the control benchmark's)
from client.sample.build_sample import EVAL_FILE, TRAIN_FILE  # noqa: E402

NAME = "clinic"
GROUPS = (
    ("book_appointment", "cancel_appointment", "opening_hours"),
    ("prescription_refill", "symptom_advice", "test_results"),
    ("billing_question", "update_contact"),
)
EPOCHS = 3
TIMEOUT = 1200.0


def setup(tmp: Path) -> tuple[Node, list[Node], Node]:
    rows = [json.loads(line) for line in TRAIN_FILE.read_text().splitlines()]
    coordinator, union = Node(tmp / "coordinator"), Node(tmp / "union")
    members = [Node(tmp / f"member-{n}") for n in range(len(GROUPS))]
    for node in (coordinator, union, *members):
        node.cli("create", NAME, "--task", "intent-classification")
    for node, group in zip(members, GROUPS, strict=True):
        part = node.root / "part.jsonl"
        part.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"] in group))
        node.cli("import", NAME, str(part))
        union.cli("import", NAME, str(part))
        peer = node.cli("identity", "show")["peer_id"]
        coordinator.cli("members", NAME, "add", peer)
    return coordinator, members, union


def one_round(coordinator: Node, members: list[Node]) -> tuple[float, dict[str, Any]]:
    control = coordinator.control()
    serve = control.call(
        "federation.serve", datanet=NAME, members=len(members), rounds=1, eval=str(EVAL_FILE), epochs=EPOCHS
    )
    control.wait(lambda _: bool(control.call("federation.status")["serving"]), timeout=120, on=("coordinate.progress",))
    for node in members:
        node.control().call("federation.join", datanet=NAME, coordinator=coordinator.address)
    admitted = control.wait(
        lambda _: (
            any(len(s["members"]) == len(members) for s in control.call("federation.status")["serving"])
            or control.job(serve["id"])["state"] != "running"
        ),
        timeout=120,
        on=("coordinate.progress", "job"),
    )
    started = time.perf_counter()
    if not admitted:
        raise SystemExit("the members were not admitted")
    done = control.wait_job(serve["id"], timeout=TIMEOUT)
    seconds = time.perf_counter() - started
    if done["state"] != "done":
        raise SystemExit(f"the round failed: {done['error']}")
    for node in members:  # each member's part ends a while after its last round; leave now
        node.control().call("federation.leave")
    return seconds, done["progress"]


def local_run(union: Node, seed: int) -> tuple[float, float]:
    control = union.control()
    started = time.perf_counter()
    job = control.follow("train", datanet=NAME, eval=str(EVAL_FILE), epochs=EPOCHS, threads=1, seed=seed, fresh=True)
    seconds = time.perf_counter() - started
    if job["state"] != "done":
        raise SystemExit(f"local training failed: {job['error']}")
    shown = control.call("adapters.show", id=job["progress"]["adapter_id"])["manifest"]
    return seconds, float(shown["evaluation"]["after"]["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="rounds and local runs, interleaved (medians)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as folder:
        tmp = Path(folder)
        coordinator, members, union = setup(tmp)
        nodes = [coordinator, *members, union]
        for node in nodes:
            node.start()
        rounds: list[float] = []
        locals_: list[float] = []
        try:
            for repeat in range(args.repeat):
                seconds, accuracy = local_run(union, seed=repeat)
                locals_.append(seconds)
                print(f"local on the union (run {repeat + 1}): {seconds:.1f} s, accuracy {accuracy:.3f}", flush=True)
                seconds, summary = one_round(coordinator, members)
                rounds.append(seconds)
                first = summary["rounds"][0]
                print(
                    f"federated round (run {repeat + 1}): {seconds:.1f} s, {first['participants']} members, "
                    f"accuracy {first['accuracy']:.3f}",
                    flush=True,
                )
        finally:
            for node in nodes:
                node.stop()
    round_s, local_s = statistics.median(rounds), statistics.median(locals_)
    print(f"round: {round_s:.1f} s (median of {len(rounds)}); local on the union: {local_s:.1f} s")
    print(f"ratio round/local: {round_s / local_s:.2f}")


if __name__ == "__main__":
    main()
