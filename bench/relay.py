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
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "relay bench passphrase"  # noqa: S105 - throwaway benchmark vaults


class Node:
    def __init__(self, base: Path, name: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DATANET_")}
        self.env |= {
            "DATANET_DATA_DIR": str(base / name / "data"),
            "DATANET_CONFIG_DIR": str(base / name / "config"),
            "DATANET_PASSPHRASE": PASSPHRASE,
            "DATANET_NODE_NICE": "0",
        }
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        (base / name / "config").mkdir(parents=True)
        (base / name / "config" / "config.toml").write_text("[node]\nmdns = false\nannounce_every = 3600\n")
        self.proc: subprocess.Popen[str] | None = None
        self.cli("create", "ward", "--task", "text")
        self.peer_id = str(self.cli("identity", "show")["peer_id"])

    def cli(self, *args: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "client.cli.main", "--json", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"datanet {' '.join(args)}: {done.stderr.strip()}")
        return dict(json.loads(done.stdout))

    def start(self, *extra: str) -> list[str]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "client.cli.main", "--json", "node", "run", *extra],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        return list(json.loads(self.proc.stdout.readline())["addresses"])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.communicate(timeout=60)
            self.proc = None


def records_file(path: Path, n: int) -> int:
    rng = random.Random(7)
    words = ["patient", "visit", "follow-up", "dosage", "fever", "clinic", "result", "scan", "referral", "chronic"]
    with path.open("w") as out:
        for i in range(n):
            text = f"{i} " + " ".join(rng.choice(words) for _ in range(130))
            out.write(json.dumps({"text": text[:950]}) + "\n")
    return path.stat().st_size


def circuit_of(node: Node, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        addresses = node.cli("status")["addresses"]
        assert isinstance(addresses, list)
        found = [a for a in addresses if "/p2p-circuit/" in a]
        if found:
            return str(found[0])
        time.sleep(0.5)
    raise SystemExit("no reservation on the relay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as folder:
        base = Path(folder)
        data = base / "records.jsonl"
        size = records_file(data, args.records)
        relay, hidden, direct = Node(base, "relay"), Node(base, "hidden"), Node(base, "direct")
        receivers = [Node(base, f"receiver{i}") for i in range(2 * args.repeat)]
        for holder in (hidden, direct):
            holder.cli("import", "ward", str(data))
            for receiver in receivers:
                holder.cli("members", "ward", "add", receiver.peer_id)
                receiver.cli("members", "ward", "add", holder.peer_id)
        print(f"{args.records:,} records, {size / 1e6:.1f} MB of JSONL; {args.repeat} syncs each way", flush=True)
        nodes = [relay, hidden, direct]
        try:
            relay_at = relay.start("--listen", "/ip4/127.0.0.1/tcp/0", "--relay-service")[0]
            hidden.start("--outbound-only", "--relay", relay_at)
            direct_at = direct.start("--listen", "/ip4/127.0.0.1/tcp/0")[0]
            through = circuit_of(hidden)
            rates: dict[str, list[float]] = {"relayed": [], "direct": []}
            for i, receiver in enumerate(receivers):
                kind = "relayed" if i % 2 == 0 else "direct"
                receiver.start("--outbound-only")
                nodes.append(receiver)
                done = receiver.cli("sync", "ward", "--peer", through if kind == "relayed" else direct_at)
                seconds = float(str(done["seconds"]))
                if done["received"] != args.records:
                    raise SystemExit(f"{kind} sync received {done['received']} of {args.records}")
                rates[kind].append(args.records / seconds)
                print(f"  {kind:<8} {seconds:6.2f} s  {args.records / seconds:9,.0f} records/s", flush=True)
                receiver.stop()
        finally:
            for node in nodes:
                node.stop()
        relayed, direct_rate = statistics.median(rates["relayed"]), statistics.median(rates["direct"])
        print(f"median relayed: {relayed:,.0f} records/s ({relayed * size / args.records / 1e6:.2f} MB/s)")
        print(f"median direct:  {direct_rate:,.0f} records/s ({direct_rate * size / args.records / 1e6:.2f} MB/s)")
        print(f"ratio relayed/direct: {relayed / direct_rate:.2f}")


if __name__ == "__main__":
    main()
