"""Benchmark: a full sync of 100,000 records of about 1 KB between two nodes on 127.0.0.1 (real libp2p: Noise,
yamux; every record verified against its id and committed to the receiver's encrypted vault), beside
(a) a local import of the same records into a vault (JSONL parse, canonical JSON, SHA-256, commit: the ceiling a
sync cannot beat) and (b) a plain TCP socket copy of the same bytes. Then an incremental sync after 1% of the
records changed (new records appended on the sender: records are content-addressed, so a change is a new
record), with the bytes on the wire in both directions against the changed records' bytes. Not a test.

The serving node runs in its own process (`--serve`), as two nodes would; the receiving node is this process.

Run: python bench/sync.py [--records N]. The last two lines are the headline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import multiaddr  # noqa: E402
import trio  # noqa: E402

from client.identity import Identity  # noqa: E402
from client.importers import import_path  # noqa: E402
from client.p2p.host import new_secure_host  # noqa: E402
from client.p2p.service import SyncService  # noqa: E402
from storage.key_file import Argon2Params  # noqa: E402
from storage.vault import Vault  # noqa: E402

NAME = "bench"
FAST = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
PASSPHRASE = "bench"  # noqa: S105 - throwaway benchmark vaults
WORDS = ["patient", "visit", "follow-up", "dosage", "fever", "clinic", "result", "scan", "referral", "chronic"]


def write_records(path: Path, n: int, seed: int) -> int:
    rng = random.Random(seed)
    size = 0
    with path.open("w") as out:
        for i in range(n):
            words: list[str] = []
            while sum(len(w) + 1 for w in words) < 950:
                words.append(rng.choice(WORDS))
            line = json.dumps({"text": " ".join(words), "label": f"L{i % 8}", "n": f"{seed}-{i}"}) + "\n"
            size += len(line)
            out.write(line)
    return size


def open_vault(folder: Path) -> Vault:
    if Vault.exists(folder):
        return Vault.unlock(folder, keystore=None, passphrase=lambda: PASSPHRASE)
    vault, _ = Vault.create(folder, keystore=None, passphrase=PASSPHRASE, argon2=FAST)
    return vault


def identity_for(folder: Path) -> Identity:
    return Identity(hashlib.sha256(str(folder).encode()).digest(), bytes(31) + b"\x01", 5)


def serve(folder: Path, allowed: str) -> None:
    """The serving node: prints its address, then answers sync sessions until stdin closes."""
    vault = open_vault(folder)
    identity = identity_for(folder)
    with vault.open_shard(NAME) as shard:
        shard.set_member(allowed, True)

    async def main() -> None:
        host = new_secure_host(identity)
        SyncService(vault, identity, host)
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            print(f"{host.get_addrs()[0]}/p2p/{host.get_id()}", flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)
            await host.close()

    trio.run(main)


def start_server(folder: Path, allowed: str) -> tuple[subprocess.Popen[str], str]:
    """The serving node in its own process, and its address once it listens."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(folder), "--allow", allowed],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    return server, server.stdout.readline().strip()


def tcp_copy(path: Path) -> float:
    data = path.read_bytes()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def send() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(data)

    thread = threading.Thread(target=send)
    thread.start()
    start = time.perf_counter()
    got = 0
    with socket.create_connection(("127.0.0.1", port)) as client:
        while chunk := client.recv(1 << 20):
            got += len(chunk)
    elapsed = time.perf_counter() - start
    thread.join()
    server.close()
    assert got == len(data)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--allow", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.allow)
        return

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        records = tmp / "records.jsonl"
        size = write_records(records, args.records, seed=1)
        mb = size / 1e6

        # (a) local import into the serving node's vault: the ceiling.
        sender_dir = tmp / "sender"
        sender = open_vault(sender_dir)
        start = time.perf_counter()
        with sender.create_shard(NAME, "intent-classification") as shard:
            import_path(shard, records)
        import_s = time.perf_counter() - start
        del sender

        # (b) a plain TCP socket copy of the same bytes.
        tcp_s = tcp_copy(records)

        # The sync: this process is the receiving node.
        receiver_dir = tmp / "receiver"
        receiver = open_vault(receiver_dir)
        me = identity_for(receiver_dir)
        with receiver.create_shard(NAME, "intent-classification") as shard:
            shard.set_member(str(new_secure_host(identity_for(sender_dir)).get_id()), True)
        me_id = str(new_secure_host(me).get_id())
        server, address = start_server(sender_dir, me_id)

        async def sync_once() -> tuple[float, int, int]:
            host = new_secure_host(me)
            service = SyncService(receiver, me, host)
            async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                start = time.perf_counter()
                result = await service.sync_with(address, NAME)
                elapsed = time.perf_counter() - start
                await host.close()
            return elapsed, result.received, result.bytes_sent + result.bytes_received

        sync_s, received, _ = trio.run(sync_once)
        assert received == args.records, received

        # Incremental: 1% new records on the sender (the serving process is stopped while its vault changes).
        assert server.stdin is not None
        server.stdin.close()
        server.wait()
        changed_file = tmp / "changed.jsonl"
        changed_n = args.records // 100
        write_records(changed_file, changed_n, seed=2)
        with open_vault(sender_dir).open_shard(NAME) as shard:
            import_path(shard, changed_file)
            changed_bytes = sum(len(body) for _, body in shard.iter_bodies() if b'"n":"2-' in body)
        server, address = start_server(sender_dir, me_id)
        inc_s, inc_received, inc_wire = trio.run(sync_once)
        assert server.stdin is not None
        server.stdin.close()
        server.wait()
        assert inc_received == changed_n, inc_received

    n = args.records
    print(f"{n:,} records, {mb:.1f} MB of JSONL")
    print(f"local import (ceiling):  {n / import_s:9,.0f} records/s  {mb / import_s:6.1f} MB/s  ({import_s:.1f} s)")
    print(f"sync over libp2p:        {n / sync_s:9,.0f} records/s  {mb / sync_s:6.1f} MB/s  ({sync_s:.1f} s)")
    print(f"plain TCP socket copy:   {n / tcp_s:9,.0f} records/s  {mb / tcp_s:6.1f} MB/s  ({tcp_s:.2f} s)")
    print(
        f"incremental: {changed_n:,} new records ({changed_bytes / 1e6:.2f} MB) synced in {inc_s:.2f} s with "
        f"{inc_wire / 1e6:.2f} MB on the wire (both directions)"
    )
    print(f"ratio sync/import: {(n / sync_s) / (n / import_s):.2f}")
    print(f"ratio incremental-bytes/changed-bytes: {inc_wire / changed_bytes:.2f}")


if __name__ == "__main__":
    main()
