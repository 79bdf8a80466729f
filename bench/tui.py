"""Benchmark: the terminal UI's responsiveness while its node works hard (not a test).

Two real nodes as in bench/control.py (real vaults, libp2p on 127.0.0.1). The TUI (tui.app.DatanetApp, run by
Textual's headless driver in this process, rendering every frame as in a terminal) attaches to the measured node.
Its event loop's lag (how late a 10 ms timer fires: a frame or an input waits that long) is measured first with the
node idle, then while the node syncs 100,000 records from the other node and trains a LoRA adapter, the UI
following the sync on its peers screen and visiting every screen. The time from start to the first screen filled
is measured both ways too. The reference is the same app with the node idle.

Run: python bench/tui.py [--records N] [--seconds S]. The last line is the headline (target <= 50).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/prover.py is not `prover`
sys.path.insert(0, str(_HERE.parent))

from textual.widgets import DataTable  # noqa: E402

from client.node.async_client import AsyncControlClient  # noqa: E402
from tui.app import DatanetApp  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_control", _HERE / "control.py")
assert _spec is not None and _spec.loader is not None
nodes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nodes)  # bench/control.py's two-node setup, shared

TICK = 0.010  # seconds the lag probe sleeps
SHOW_LAGS = False  # --show-lags: print each lag over 40 ms with the screen on view


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def session(data_dir: Path, seconds: float, during: Any = None) -> tuple[float, list[float]]:
    """Open the app on `data_dir`'s node: (ms to the first screen filled, every lag sample in ms over `seconds`,
    or until `during` (an awaitable run beside it, which presses keys) ends)."""
    app = DatanetApp(AsyncControlClient(data_dir, timeout=120), where=str(data_dir))
    started = time.perf_counter()
    lags: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.screen.query(DataTable) or not app.screen.query_one("#datanets", DataTable).row_count:
            await pilot.pause(0.005)
        first = (time.perf_counter() - started) * 1000
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds
        task = asyncio.ensure_future(during(pilot)) if during is not None else None
        while loop.time() < stop and (task is None or not task.done()):
            before = loop.time()
            await asyncio.sleep(TICK)
            lags.append(max(0.0, (loop.time() - before - TICK) * 1000))
            if SHOW_LAGS and lags[-1] > 40:
                print(f"  lag {lags[-1]:.0f} ms on the {app.current_mode} screen", flush=True)
        if task is not None:
            await task
    return first, lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records the measured node fetches by sync")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds the idle app is measured")
    parser.add_argument("--keys", default="3452617833", help="screens visited in turn during the load (3: peers)")
    parser.add_argument("--show-lags", action="store_true", help="print each lag over 40 ms, with its screen")
    args = parser.parse_args()
    global SHOW_LAGS
    SHOW_LAGS = args.show_lags
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        measured, sender = nodes.Node(tmp / "measured"), nodes.Node(tmp / "sender")
        for node in (measured, sender):
            node.cli("create", nodes.NAME, "--task", "intent-classification")
        own = nodes.write_records(tmp / "own.jsonl", 1_000, seed=1, text_bytes=120)
        shared = nodes.write_records(tmp / "shared.jsonl", args.records, seed=2, text_bytes=950)
        measured.cli("import", nodes.NAME, str(own))
        sender.cli("import", nodes.NAME, str(shared))
        measured.cli("members", nodes.NAME, "add", sender.cli("identity", "show")["peer_id"])
        sender.cli("members", nodes.NAME, "add", measured.cli("identity", "show")["peer_id"])
        measured.start()
        sender.start()
        data_dir = measured.root / "data"
        try:
            asyncio.run(session(data_dir, 2.0))  # warm up: imports, caches
            idle_first, idle = asyncio.run(session(data_dir, args.seconds))
            control = measured.control()
            train = control.train(nodes.NAME, base="tiny-classifier", epochs=200, threads=1)
            control.wait(lambda _: control.job(train["id"])["state"] == "running", timeout=120, on=("job",))
            sync = control.sync(nodes.NAME, sender.address)

            async def follow(pilot: Any) -> None:  # the user watches the sync, and looks around meanwhile
                await pilot.press("3")
                while (await pilot.app.client.call("job", id=sync["id"]))["state"] in ("queued", "running"):
                    for key in args.keys:
                        await pilot.press(key)
                        await asyncio.sleep(0.3)

            started = time.perf_counter()
            loaded_first, loaded = asyncio.run(session(data_dir, 600.0, during=follow))
            sync_s = time.perf_counter() - started
            result, training = nodes.finish(control, sync["id"], train["id"])
        finally:
            measured.stop()
            sender.stop()
    if result["state"] != "done":
        raise SystemExit(f"the sync did not finish: {result['error']}")
    print(
        f"idle:   first screen {idle_first:.0f} ms; {len(idle)} lag samples, p50 {p(idle, 50):.1f} ms, "
        f"p99 {p(idle, 99):.1f} ms, max {max(idle):.1f} ms"
    )
    print(
        f"loaded: first screen {loaded_first:.0f} ms; during a sync of {result['progress']['received']:,} records "
        f"({sync_s:.1f} s with the app open) beside a training job ({training['state']}), {len(loaded)} lag samples, "
        f"p50 {p(loaded, 50):.1f} ms, p99 {p(loaded, 99):.1f} ms, max {max(loaded):.1f} ms"
    )
    print(f"p99 lag ms: {p(loaded, 99):.1f}")


if __name__ == "__main__":
    main()
