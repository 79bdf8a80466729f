"""Benchmark: a Datanet sync through a circuit relay against the same sync made directly, with real `datanet node run`
processes on 127.0.0.1 (Noise and yamux on every hop; the relay decrypts and re-encrypts each hop's Noise). Not a
test.

Five nodes: R relays (`--relay-service`); H is an outbound-only member (no listening port) holding the records,
reachable only as R's circuit; D is a listening member holding the same records; each run a fresh outbound-only
member syncs them, alternately from H through R and from D directly (both sides outbound-only or behind the
relay, so DCUtR cannot turn the relayed connection into a direct one). The rate is records a second of the
session as the receiving node reports it; the medians make the ratio.

Run: python bench/relay.py [--records N] [--repeat K]. The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from tests.test_node import make_node  # noqa: E402  (the test suite's node processes, as bench/hostile.py)
from tests.test_reachability import wait_for_circuit  # noqa: E402


def records_file(path: Path, n: int) -> int:
    rng = random.Random(7)
    words = ["patient", "visit", "follow-up", "dosage", "fever", "clinic", "result", "scan", "referral", "chronic"]
    with path.open("w") as out:
        for i in range(n):
            text = f"{i} " + " ".join(rng.choice(words) for _ in range(130))
            out.write(json.dumps({"text": text[:950], "label": f"l{i % 4}"}) + "\n")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as folder:
        base = Path(folder)
        data = base / "records.jsonl"
        size = records_file(data, args.records)
        relay, hidden, direct = make_node(base, "relay"), make_node(base, "hidden"), make_node(base, "direct")
        receivers = [make_node(base, f"receiver{i}") for i in range(2 * args.repeat)]
        for holder in (hidden, direct):
            holder.cli.ok("import", "ward", str(data))
            for receiver in receivers:
                holder.cli.ok("members", "ward", "add", receiver.peer_id)
                receiver.cli.ok("members", "ward", "add", holder.peer_id)
        print(f"{args.records:,} records, {size / 1e6:.1f} MB of JSONL; {args.repeat} syncs each way", flush=True)
        nodes = [relay, hidden, direct]
        try:
            relay.start("--relay-service")
            hidden.start("--outbound-only", "--relay", relay.address)
            direct.start()
            through = wait_for_circuit(hidden)
            rates: dict[str, list[float]] = {"relayed": [], "direct": []}
            for i, receiver in enumerate(receivers):
                kind = "relayed" if i % 2 == 0 else "direct"
                receiver.start("--outbound-only")
                nodes.append(receiver)
                done = receiver.cli.ok(
                    "--json", "sync", "ward", "--peer", through if kind == "relayed" else direct.address
                )
                done = done.json()
                seconds = float(done["seconds"])
                if done["received"] != args.records:
                    raise SystemExit(f"{kind} sync received {done['received']} of {args.records}")
                rates[kind].append(args.records / seconds)
                print(f"  {kind:<8} {seconds:6.2f} s  {args.records / seconds:9,.0f} records/s", flush=True)
                receiver.stop()
        finally:
            for node in nodes:
                if node.proc is not None:
                    node.stop()
        relayed, direct_rate = statistics.median(rates["relayed"]), statistics.median(rates["direct"])
        print(f"median relayed: {relayed:,.0f} records/s ({relayed * size / args.records / 1e6:.2f} MB/s)")
        print(f"median direct:  {direct_rate:,.0f} records/s ({direct_rate * size / args.records / 1e6:.2f} MB/s)")
        print(f"ratio relayed/direct: {relayed / direct_rate:.2f}")


if __name__ == "__main__":
    main()
