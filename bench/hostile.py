"""Benchmark: an honest member's sync rate with a node under continuous attack (every attack of tests/hostile_peer.py,
over and over, each from its own identity) against the same sync with no attack, in one run. Real `datanet node
run` processes on 127.0.0.1; the attacker is a libp2p host in this process. Not a test.

Each run a fresh honest member (its own node) syncs the victim's records; runs alternate clean and attacked, and
the medians make the ratio. Run: python bench/hostile.py [--records N] [--repeat K]. The last line is the headline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import trio  # noqa: E402

from tests.hostile_peer import Attacker, Outcome, attack_forever  # noqa: E402
from tests.test_node import jsonl, make_node  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as folder:
        base = Path(folder)
        victim = make_node(base, "victim")
        victim.cli.ok("import", "ward", str(jsonl(base / "v.jsonl", range(args.records))))
        honest = [make_node(base, f"honest{i}") for i in range(2 * args.repeat)]
        for member in honest:
            victim.cli.ok("members", "ward", "add", member.peer_id)
            member.cli.ok("members", "ward", "add", victim.peer_id)
        victim.start()
        attacker = Attacker(victim.address, "ward", victim_ids=sorted(bytes.fromhex(i) for i in victim.ids()))
        for member_id in attacker.members():
            victim.cli.ok("members", "ward", "add", member_id)
        outcomes: list[Outcome] = []
        stop = threading.Event()

        def attack() -> None:
            async def until_stopped() -> None:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(attack_forever, attacker, outcomes)
                    await trio.to_thread.run_sync(stop.wait)
                    nursery.cancel_scope.cancel()

            trio.run(until_stopped)

        rates: dict[str, list[float]] = {"clean": [], "attacked": []}
        sys.stdout.write(f"{args.records:,} records; {args.repeat} syncs each way\n")
        try:
            for i, member in enumerate(honest):
                kind = "clean" if i % 2 == 0 else "attacked"
                attacking = threading.Thread(target=attack) if kind == "attacked" else None
                if attacking is not None:
                    stop.clear()
                    attacking.start()
                    time.sleep(2.0)  # the attacks are under way before the honest member starts
                member.start()
                started = time.monotonic()
                done = member.cli.ok("--json", "sync", "ward", "--peer", victim.address).json()
                seconds = time.monotonic() - started
                member.stop()
                if attacking is not None:
                    stop.set()
                    attacking.join(timeout=300)
                rates[kind].append(done["received"] / seconds)
                sys.stdout.write(f"  {kind:<9} {seconds:6.2f} s  {done['received'] / seconds:9,.0f} records/s\n")
                sys.stdout.flush()
        finally:
            victim.stop()
        clean, attacked = statistics.median(rates["clean"]), statistics.median(rates["attacked"])
        ended = {o.ended for o in outcomes}
        sys.stdout.write(f"attacks made: {len(outcomes)} ({len({o.attack for o in outcomes})} kinds), ended: {ended}\n")
        sys.stdout.write(f"median clean: {clean:,.0f} records/s; median attacked: {attacked:,.0f} records/s\n")
        sys.stdout.write(f"ratio attacked/clean sync rate: {attacked / clean:.2f}\n")


if __name__ == "__main__":
    main()
