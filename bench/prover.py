"""Benchmark: this project's provers against snarkjs, same circuits, same inputs, in one run (not a test).

The project has two provers (prover/groth16.py): `native` (the default: prover/native.py, mcl MSMs on both
cores) and `groth16py` (arkworks, single-threaded; the fallback). Both are measured; the headline is native's.

- cold: a fresh process loads the keys from disk and makes one proof (project: python; snarkjs: its CLI,
  `groth16 fullprove`, the way most tools call it);
- warm: keys already in memory, as in a running node (project: repeated calls, each including the local
  verification every proof goes through; snarkjs: a node script that keeps wasm and zkey in memory); medians;
- verification time; records proven per second for the `contribution` circuit (16 records a proof): one
  process on a sample of batches, and a whole 10,000-record shard (625 proofs) on every core, as
  `datanet prove` does it (about 2.5 minutes on two cores).

Run: python bench/prover.py [--repeat N]. The last line is the headline: warm depth-20 membership proving
against the snarkjs CLI.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# `python bench/prover.py` puts bench/ first on sys.path, where this very file would shadow the `prover`
# package: look it up from the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from prover import artifacts, groth16  # noqa: E402
from prover.commitment import identity_commitment, nullifier  # noqa: E402
from prover.merkle import IncrementalTree  # noqa: E402
from prover.proofs import BATCH_CAPACITY, MEMBERSHIP_DEPTH, BatchRecord, batch_root  # noqa: E402

JS = Path(__file__).resolve().parent.parent / "prover" / "js"
SNARKJS = JS / "node_modules" / ".bin" / "snarkjs"
SECRET = 987654321


def membership_inputs() -> tuple[dict[str, Any], list[int]]:
    tree = IncrementalTree(MEMBERSHIP_DEPTH)
    for other in range(1, 6):
        tree.insert(identity_commitment(other))
    index = tree.insert(identity_commitment(SECRET))
    proof = tree.proof(index)
    public = [tree.root, nullifier(SECRET, 3), 3, 0xABC]
    inputs = {
        "root": public[0],
        "nullifier": public[1],
        "scope": 3,
        "recipient": 0xABC,
        "secret": SECRET,
        "pathIndices": [(index >> level) & 1 for level in range(MEMBERSHIP_DEPTH)],
        "siblings": list(proof.siblings),
    }
    return inputs, public


def contribution_inputs(seed: int = 0) -> tuple[dict[str, Any], list[int]]:
    commitment = identity_commitment(SECRET)
    records = [BatchRecord(1000 * seed + i + 1, 7 * i + seed) for i in range(BATCH_CAPACITY)]
    root = batch_root(commitment, records)
    public = [root, BATCH_CAPACITY, commitment, 5, 0xABC]
    inputs = {
        "batchRoot": root,
        "count": BATCH_CAPACITY,
        "identityCommitment": commitment,
        "datanetId": 5,
        "recipient": 0xABC,
        "secret": SECRET,
        "digests": [r.digest for r in records],
        "salts": [r.salt for r in records],
        "filled": [1] * BATCH_CAPACITY,
    }
    return inputs, public


INPUTS = {"membership": membership_inputs, "contribution": contribution_inputs}


def _json_inputs(inputs: dict[str, Any]) -> str:
    return json.dumps({k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in inputs.items()})


def project_cold(circuit: artifacts.Circuit, backend: groth16.Backend) -> float:
    code = (
        "import time,sys; t=time.perf_counter()\n"
        "from bench.prover import INPUTS; from prover import groth16\n"
        f"i,p=INPUTS[{circuit!r}](); groth16.prove({circuit!r}, i, p)\n"
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DATANET_PROVER": backend},
    )
    return float(out.stdout.strip().splitlines()[-1])


def project_warm(circuit: artifacts.Circuit, backend: groth16.Backend, repeat: int) -> tuple[float, float]:
    os.environ["DATANET_PROVER"] = backend
    inputs, public = INPUTS[circuit]()
    groth16.warm(circuit)
    groth16.prove(circuit, inputs, public)  # not counted: first-call costs
    proofs, times, verifies = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        proofs.append(groth16.prove(circuit, inputs, public))  # includes the local verification
        times.append(time.perf_counter() - start)
    for proof in proofs:
        start = time.perf_counter()
        assert groth16.verify(circuit, proof, public)
        verifies.append(time.perf_counter() - start)
    return statistics.median(times), statistics.median(verifies)


def snarkjs_cold(circuit: artifacts.Circuit, workdir: Path) -> float:
    found = artifacts.load(circuit)
    inputs, _ = INPUTS[circuit]()
    (workdir / "input.json").write_text(_json_inputs(inputs))
    start = time.perf_counter()
    subprocess.run(
        [
            str(SNARKJS),
            "groth16",
            "fullprove",
            str(workdir / "input.json"),
            str(found.wasm),
            str(found.zkey),
            str(workdir / "proof.json"),
            str(workdir / "public.json"),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def snarkjs_warm(circuit: artifacts.Circuit, workdir: Path, repeat: int) -> float:
    found = artifacts.load(circuit)
    inputs, _ = INPUTS[circuit]()
    (workdir / "input.json").write_text(_json_inputs(inputs))
    out = subprocess.run(
        ["node", "prove_warm.mjs", str(found.wasm), str(found.zkey), str(workdir / "input.json"), str(repeat + 1)],
        cwd=JS,
        check=True,
        capture_output=True,
        text=True,
    )
    times = json.loads(out.stdout.strip().splitlines()[-1])["times"][1:]  # the first call warms the JIT
    return float(statistics.median(times)) / 1000


def _prove_batches(first: int, count: int) -> int:
    os.environ["DATANET_PROVER"] = "native"
    groth16.warm("contribution")
    for seed in range(first, first + count):
        inputs, public = contribution_inputs(seed)
        groth16.prove("contribution", inputs, public)
    return count


def contribution_throughput(batches: int, processes: int) -> float:
    """Records per second, keys already warm in each process."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        pool.starmap(_prove_batches, [(100 + p, 1) for p in range(processes)])  # warm every worker
        shares = [batches // processes + (1 if p < batches % processes else 0) for p in range(processes)]
        firsts = [sum(shares[:p]) for p in range(processes)]
        start = time.perf_counter()
        done = sum(pool.starmap(_prove_batches, list(zip(firsts, shares, strict=True))))
        return done * BATCH_CAPACITY / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--shard-records", type=int, default=10_000)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for circuit in ("membership", "contribution"):
            found = artifacts.load(circuit)
            r: dict[str, float] = {}
            for backend in groth16.BACKENDS:
                r[f"{backend} warm"], r[f"{backend} verify"] = project_warm(circuit, backend, args.repeat)
                r[f"{backend} cold"] = project_cold(circuit, backend)
            r["snarkjs cold"] = snarkjs_cold(circuit, Path(tmp))
            r["snarkjs warm"] = snarkjs_warm(circuit, Path(tmp), args.repeat)
            results[circuit] = r
            print(
                f"{circuit:<12} {found.constraints:5d} constraints | native cold {r['native cold']:.2f}s, warm "
                f"{r['native warm']:.3f}s | groth16py cold {r['groth16py cold']:.2f}s, warm "
                f"{r['groth16py warm']:.3f}s | verify {r['native verify'] * 1000:.1f}ms | snarkjs CLI "
                f"{r['snarkjs cold']:.2f}s, snarkjs warm {r['snarkjs warm']:.3f}s"
            )
    one = contribution_throughput(args.batches, 1)
    cores = os.cpu_count() or 1
    shard_batches = -(-args.shard_records // BATCH_CAPACITY)
    every = contribution_throughput(shard_batches, cores)
    print(
        f"contribution throughput: {one:.1f} records/s in one process ({args.batches} proofs); a "
        f"{args.shard_records:,}-record shard ({shard_batches} proofs) on {cores} cores: {every:.1f} records/s, "
        f"{shard_batches * BATCH_CAPACITY / every:.0f} s"
    )
    m = results["membership"]
    print(f"ratio groth16py/snarkjs (the fallback prover, membership): {m['groth16py warm'] / m['snarkjs cold']:.2f}")
    print(f"ratio prove/snarkjs-warm (both warm, membership): {m['native warm'] / m['snarkjs warm']:.2f}")
    print(f"ratio prove/snarkjs: {m['native warm'] / m['snarkjs cold']:.2f}")


if __name__ == "__main__":
    main()
