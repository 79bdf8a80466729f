"""Benchmark: sync between two nodes on 127.0.0.1 (real libp2p: Noise, yamux; every record verified against its id
and its Datanet's task and committed to the receiver's encrypted vault; every carried batch's root recomputed and
its Groth16 proof verified), each beside a local import of the same records into a vault (JSONL parse, canonical
JSON, SHA-256, commit: the ceiling a sync cannot beat). Not a test.

1. A full sync of 100,000 records of about 1 KB, the first `--proven` of them in proven batches whose provenance
   is carried, beside the import and a plain TCP socket copy of the same bytes; the rate carried batches are
   verified at (batches/s). Imports and syncs run `--repeat` times, interleaved, and their medians make the ratio:
   on a shared two-core machine one run of either moves by a fifth.
2. An incremental sync after 1% of the records changed (new records appended on the sender, and proved: records
   are content-addressed, so a change is a new record), with the bytes on the wire in both directions, provenance
   included, against the changed records' bytes.
3. Two members differing by 150,000 records each way (about 250 bytes each), both directions in one session.
4. A fresh member joining a Datanet of 1,000,000 records (about 250 bytes each).

The serving node runs in its own process (`--serve`), as two nodes would; the receiving node is this process.
Run: python bench/sync.py [--records N] [--each-way N] [--join N] [--proven N]. The last two lines are the
headline (of case 1 and 2).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import statistics
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

from client.contribution import prove_pending  # noqa: E402
from client.identity import Identity  # noqa: E402
from client.importers import import_path  # noqa: E402
from client.p2p.host import new_secure_host  # noqa: E402
from client.p2p.service import SyncService  # noqa: E402
from client.p2p.sync import SyncResult  # noqa: E402
from storage.key_file import Argon2Params  # noqa: E402
from storage.vault import Vault  # noqa: E402

NAME = "bench"
FAST = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
PASSPHRASE = "bench"  # noqa: S105 - throwaway benchmark vaults
WORDS = ["patient", "visit", "follow-up", "dosage", "fever", "clinic", "result", "scan", "referral", "chronic"]


def write_records(path: Path, n: int, seed: int, text_bytes: int = 950) -> int:
    rng = random.Random(seed)
    size = 0
    with path.open("w") as out:
        for i in range(n):
            words: list[str] = []
            while sum(len(w) + 1 for w in words) < text_bytes:
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
    seed = hashlib.sha256(str(folder).encode()).digest()
    return Identity(seed, hashlib.sha256(seed).digest()[:31] + b"\x01", 5 + seed[0])


def import_timed(vault: Vault, path: Path, *, create: bool = True) -> float:
    start = time.perf_counter()
    if create:
        with vault.create_shard(NAME, "intent-classification") as shard:
            import_path(shard, path)
    else:
        with vault.open_shard(NAME) as shard:
            import_path(shard, path)
    return time.perf_counter() - start


def prove_some(folder: Path, limit: int) -> int:
    """Prove up to `limit` pending records of the node at `folder` (both cores); returns the batches made."""
    with open_vault(folder).open_shard(NAME) as shard:
        return len(prove_pending(shard, identity_for(folder), folder, limit=limit, workers=2))


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


def pair(tmp: Path, tag: str) -> tuple[Path, Path, str, str]:
    """Folders of a serving and a receiving node that list each other as members; (sender, receiver, the receiver's
    peer id, the sender's peer id)."""
    sender_dir, receiver_dir = tmp / f"{tag}-sender", tmp / f"{tag}-receiver"
    sender_id = str(new_secure_host(identity_for(sender_dir)).get_id())
    receiver_id = str(new_secure_host(identity_for(receiver_dir)).get_id())
    return sender_dir, receiver_dir, receiver_id, sender_id


def allow(folder: Path, peer: str) -> None:
    with open_vault(folder).open_shard(NAME) as shard:
        shard.set_member(peer, True)


def sync_from(receiver_dir: Path, address: str, me: Identity | None = None) -> SyncResult:
    receiver = open_vault(receiver_dir)
    me = me or identity_for(receiver_dir)

    async def once() -> SyncResult:
        host = new_secure_host(me)
        service = SyncService(receiver, me, host)
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            result = await service.sync_with(address, NAME)
            await host.close()
        return result

    return trio.run(once)


def stop(server: subprocess.Popen[str]) -> None:
    assert server.stdin is not None
    server.stdin.close()
    server.wait()


def synced(sender_dir: Path, receiver_dir: Path, receiver_id: str) -> SyncResult:
    """One sync of the receiver (this process) with the sender (its own process, started and stopped here)."""
    server, address = start_server(sender_dir, receiver_id)
    try:
        return sync_from(receiver_dir, address)
    finally:
        stop(server)


def full_and_incremental(tmp: Path, n: int, proven: int, repeat: int) -> dict[str, float]:
    records = tmp / "records.jsonl"
    mb = write_records(records, n, seed=1) / 1e6
    sender_dir, receiver_dir, receiver_id, sender_id = pair(tmp, "full")
    imports = [import_timed(open_vault(sender_dir), records)]
    batches = prove_some(sender_dir, proven)
    tcp_s = tcp_copy(records)
    server, address = start_server(sender_dir, receiver_id)
    syncs: list[float] = []
    try:  # `repeat` imports and syncs, interleaved, each into a fresh vault; the medians count (a noisy machine)
        for k in range(repeat):
            folder = receiver_dir if k == 0 else tmp / f"full-receiver-{k}"
            open_vault(folder).create_shard(NAME, "intent-classification").close()
            allow(folder, sender_id)
            result = sync_from(folder, address, identity_for(receiver_dir))
            assert result.received == n and result.batches_received == batches, (result.received, batches)
            syncs.append(result.seconds)
            if k:
                imports.append(import_timed(open_vault(tmp / f"full-import-{k}"), records))
    finally:
        stop(server)
    import_s, sync_s = statistics.median(imports), statistics.median(syncs)
    print(f"  runs: imports {', '.join(f'{t:.2f}' for t in imports)} s; syncs {', '.join(f'{t:.2f}' for t in syncs)} s")

    # Incremental: 1% new records on the sender, proved (the serving process is stopped while its vault changes).
    changed_file = tmp / "changed.jsonl"
    changed_n = n // 100
    write_records(changed_file, changed_n, seed=2)
    import_timed(open_vault(sender_dir), changed_file, create=False)
    new_batches = prove_some(sender_dir, changed_n)
    with open_vault(sender_dir).open_shard(NAME) as shard:
        changed_bytes = sum(len(body) for _, body in shard.iter_bodies() if b'"n":"2-' in body)
    inc = synced(sender_dir, receiver_dir, receiver_id)
    assert inc.received == changed_n and inc.batches_received == new_batches, (inc.received, inc.batches_received)
    print(f"{n:,} records, {mb:.1f} MB of JSONL; {batches} proven batches ({batches * 16:,} records) carried")
    print(f"  local import (ceiling):  {n / import_s:9,.0f} records/s  {mb / import_s:6.1f} MB/s  ({import_s:.1f} s)")
    print(f"  sync over libp2p:        {n / sync_s:9,.0f} records/s  {mb / sync_s:6.1f} MB/s  ({sync_s:.1f} s)")
    print(f"  plain TCP socket copy:   {n / tcp_s:9,.0f} records/s  {mb / tcp_s:6.1f} MB/s  ({tcp_s:.2f} s)")
    print(
        f"  carried provenance: {result.batches_received} batches verified in {result.verify_seconds:.2f} s "
        f"({result.batches_received / max(result.verify_seconds, 1e-9):.1f} batches/s, off the event loop)"
    )
    print(
        f"  incremental: {changed_n:,} new records ({changed_bytes / 1e6:.2f} MB, {new_batches} batches) synced in "
        f"{inc.seconds:.2f} s with {(inc.bytes_sent + inc.bytes_received) / 1e6:.2f} MB on the wire (both directions)"
    )
    return {
        "ratio": import_s / sync_s,
        "incremental": (inc.bytes_sent + inc.bytes_received) / changed_bytes,
        "verify": result.batches_received / max(result.verify_seconds, 1e-9),
    }


def each_way(tmp: Path, n: int) -> float:
    """Two members that differ by n records each way; one session moves both halves."""
    sender_dir, receiver_dir, receiver_id, sender_id = pair(tmp, "each")
    mine, theirs = tmp / "each-a.jsonl", tmp / "each-b.jsonl"
    write_records(mine, n, seed=3, text_bytes=200)
    write_records(theirs, n, seed=4, text_bytes=200)
    import_s = import_timed(open_vault(sender_dir), mine) + import_timed(open_vault(receiver_dir), theirs)
    allow(receiver_dir, sender_id)
    result = synced(sender_dir, receiver_dir, receiver_id)
    assert (result.received, result.sent) == (n, n), (result.received, result.sent)
    print(
        f"{n:,} records each way (~250 B): sync {2 * n / result.seconds:,.0f} records/s ({result.seconds:.1f} s, "
        f"{result.rounds} reconciliation rounds); import {2 * n / import_s:,.0f} records/s; "
        f"ratio {import_s / result.seconds:.2f}"
    )
    return import_s / result.seconds


def join(tmp: Path, n: int) -> float:
    """A fresh member joins a Datanet of n records."""
    sender_dir, receiver_dir, receiver_id, sender_id = pair(tmp, "join")
    records = tmp / "join.jsonl"
    write_records(records, n, seed=5, text_bytes=200)
    import_s = import_timed(open_vault(sender_dir), records)
    records.unlink()
    open_vault(receiver_dir).create_shard(NAME, "intent-classification").close()
    allow(receiver_dir, sender_id)
    result = synced(sender_dir, receiver_dir, receiver_id)
    assert result.received == n, result.received
    print(
        f"a fresh member joins {n:,} records (~250 B): sync {n / result.seconds:,.0f} records/s "
        f"({result.seconds:.1f} s); import {n / import_s:,.0f} records/s; ratio {import_s / result.seconds:.2f}"
    )
    return import_s / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--proven", type=int, default=1024, help="records of case 1 in proven batches")
    parser.add_argument("--each-way", type=int, default=150_000)
    parser.add_argument("--join", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="imports and syncs of case 1 (their medians count)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--allow", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.allow)
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.each_way:
            each_way(tmp, args.each_way)
        if args.join:
            join(tmp, args.join)
        headline = full_and_incremental(tmp, args.records, args.proven, args.repeat)
    print(f"ratio sync/import: {headline['ratio']:.2f}")
    print(f"ratio incremental-bytes/changed-bytes: {headline['incremental']:.2f}")


if __name__ == "__main__":
    main()
