"""Benchmark: the node's control API under load (not a test).

Two real nodes (`datanet node run` processes, real vaults, libp2p on 127.0.0.1). The measured node answers
`status` and `records.count` round trips (its control front answers them: client/node/front.py), paced (one call
every 10 ms, alternating), first idle, then while it runs a sync that fetches 100,000 records (~1 KB) from the other
node and a LoRA training job on its own records, both at once. Event delivery latency is measured under that load
too (the node stamps each event with the time it published it; the subscriber on this machine reads the same
clock). The reference is the same node idle: a loop blocked by database or training work shows up as a larger p99
under load.

Run: python bench/control.py [--records N] [--calls N]. The last line is the headline (target <= 4).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/prover.py is not `prover`
sys.path.insert(0, str(_HERE.parent))

from client.node.control import ControlClient  # noqa: E402

NAME = "bench"
PASSPHRASE = "control bench passphrase"  # noqa: S105 - throwaway benchmark vaults
WORDS = ["patient", "visit", "follow-up", "dosage", "fever", "clinic", "result", "scan", "referral", "chronic"]
PACE = 0.010  # seconds between calls


class Node:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DATANET_")}
        self.env.update(
            DATANET_DATA_DIR=str(root / "data"),
            DATANET_CONFIG_DIR=str(root / "config"),
            DATANET_PASSPHRASE=PASSPHRASE,
            DATANET_CACHE_DIR=str(root.parent / "cache"),
        )
        (root / "config").mkdir(parents=True)
        (root / "config" / "config.toml").write_text("[node]\nmdns = false\nannounce_every = 3600\n")
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "client.cli.main", "--json", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"datanet {' '.join(args)} failed: {done.stderr.strip()}")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "client.cli.main", "--json", "node", "run", "--listen", "/ip4/127.0.0.1/tcp/0"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = json.loads(self.proc.stdout.readline())["addresses"][0]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.communicate(timeout=60)

    def control(self) -> ControlClient:
        return ControlClient(self.root / "data", timeout=60)


def write_records(path: Path, n: int, seed: int, text_bytes: int) -> Path:
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(n):
            words: list[str] = []
            while sum(len(w) + 1 for w in words) < text_bytes:
                words.append(rng.choice(WORDS))
            out.write(json.dumps({"text": " ".join(words), "label": f"L{i % 8}", "n": f"{seed}-{i}"}) + "\n")
    return path


SLOWEST: list[tuple[float, str, float]] = []  # (ms, method, when) of every loaded call, for the slowest few


def round_trips(control: ControlClient, calls: int, until: Callable[[], bool] = lambda: False) -> list[float]:
    """Milliseconds of `calls` paced round trips (status and records.count alternating), fewer if `until`."""
    times: list[float] = []
    for i in range(calls):
        if until():
            break
        started = time.perf_counter()
        method = "records.count" if i % 2 else "status"
        if i % 2:
            control.call("records.count", datanet=NAME)
        else:
            control.call("status")
        times.append((time.perf_counter() - started) * 1000)
        SLOWEST.append((times[-1], method, time.time()))
        time.sleep(PACE)
    return times


def finish(control: ControlClient, sync_id: str, train_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sync's and the training's jobs once the measured part is over; the training cancelled if it still runs
    (bench/tui.py ends the same way)."""
    result, training = control.job(sync_id), control.job(train_id)
    if training["state"] in ("queued", "running"):
        control.cancel(train_id)
    return dict(result), dict(training)


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records the loaded node fetches by sync")
    parser.add_argument("--calls", type=int, default=600, help="round trips measured idle (and at most loaded)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        measured, sender = Node(tmp / "measured"), Node(tmp / "sender")
        for node in (measured, sender):
            node.cli("create", NAME, "--task", "intent-classification")
        measured.cli("import", NAME, str(write_records(tmp / "own.jsonl", 1_000, seed=1, text_bytes=120)))
        sender.cli("import", NAME, str(write_records(tmp / "shared.jsonl", args.records, seed=2, text_bytes=950)))
        measured_id = measured.cli("identity", "show")["peer_id"]
        sender_id = sender.cli("identity", "show")["peer_id"]
        measured.cli("members", NAME, "add", sender_id)
        sender.cli("members", NAME, "add", measured_id)
        measured.start()
        sender.start()
        try:
            control = measured.control()
            round_trips(control, 50)  # warm up: imports, caches
            idle = round_trips(control, args.calls)

            events: list[float] = []  # delivery latency of each event, ms
            sync_done = threading.Event()
            subscribed = threading.Event()

            def listen() -> None:
                def each(event: dict[str, Any] | None) -> bool:
                    if event is None:
                        subscribed.set()
                        return False
                    events.append((time.time() - float(event["at"])) * 1000)
                    return event.get("kind") == "sync" and event.get("state") in ("done", "failed")

                measured.control().wait(each, timeout=600)
                sync_done.set()

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            subscribed.wait(30)
            train = control.train(NAME, base="tiny-classifier", epochs=200, threads=1)
            control.wait(lambda _: control.job(train["id"])["state"] == "running", timeout=120, on=("job",))
            sync = control.sync(NAME, sender.address)
            started = time.perf_counter()
            loaded = round_trips(control, 100_000, until=sync_done.is_set)
            sync_s = time.perf_counter() - started
            listener.join(600)
            result, training = finish(control, sync["id"], train["id"])
        finally:
            measured.stop()
            sender.stop()
    if result["state"] != "done":
        raise SystemExit(f"the sync did not finish: {result['error']}")
    print(f"idle:   {len(idle)} round trips, p50 {p(idle, 50):.2f} ms, p99 {p(idle, 99):.2f} ms")
    print(
        f"loaded: {len(loaded)} round trips during a sync of {result['progress']['received']:,} records "
        f"({sync_s:.1f} s) beside a training job ({training['state']}), p50 {p(loaded, 50):.2f} ms, "
        f"p99 {p(loaded, 99):.2f} ms, max {max(loaded):.1f} ms"
    )
    print(f"events under load: {len(events)}, delivery p50 {p(events, 50):.2f} ms, p99 {p(events, 99):.2f} ms")
    for ms, method, when in sorted(SLOWEST, reverse=True)[:5]:
        at = time.strftime("%H:%M:%S", time.localtime(when)) + f"{when % 1:.3f}"[1:]
        print(f"  slowest: {method} {ms:.1f} ms at {at}")
    print(f"ratio loaded/idle p99 rtt: {p(loaded, 99) / p(idle, 99):.2f}")


if __name__ == "__main__":
    main()
