"""Benchmark: the contracts' gas, and the embedded devnet against anvil, in one run (not a test).

- gas of the proof check alone (the `contribution` Groth16 verifier behind its reverting wrapper, execution gas
  without the transaction's intrinsic cost), of a whole `submitBatch` (a contributor's first batch, which also
  inserts them into the depth-20 contributor tree, and the steady state), and per record at each batch size
  (the circuit holds 16 records; a batch may fill fewer);
- transactions per second through the client's own code path (`Web3Chain`: simulate, sign, send, receipt) on
  the embedded devnet and on anvil (127.0.0.1): simple contract writes (`setAllowed`) and `submitBatch` with
  real proofs;
- proof verification time (an `eth_call` of the check) on both.

Run: python bench/chain.py [--writes N] [--submits N]. The last three lines are the headline.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/prover.py would shadow prover/
sys.path.insert(0, str(_HERE.parent))

from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from client.chain.anvil import ANVIL_KEY, running_anvil  # noqa: E402
from client.chain.deploy import deploy  # noqa: E402
from client.chain.devnet import FAUCET_KEY, Devnet  # noqa: E402
from client.chain.web3_chain import Web3Chain, proof_words  # noqa: E402
from prover.commitment import identity_commitment  # noqa: E402
from prover.proofs import BatchRecord, ContributionProof, prove_contribution  # noqa: E402

SECRET = 1357911
KEY = bytes.fromhex("5" * 64)  # the benchmark's account, funded on both chains
ADDRESS = Account.from_key(KEY).address
DATANET_ID = 1  # the first Datanet on a fresh deployment


def make_proof(seed: int, count: int) -> ContributionProof:
    records = [BatchRecord(seed * 1000 + i + 1, seed * 7 + i) for i in range(count)]
    return prove_contribution(
        secret=SECRET,
        commitment=identity_commitment(SECRET),
        records=records,
        datanet_id=DATANET_ID,
        recipient=int(ADDRESS, 16),
    )


def intrinsic_gas(data: bytes) -> int:
    zeros = data.count(0)
    return 21_000 + 4 * zeros + 16 * (len(data) - zeros)


def run_backend(
    name: str, w3: Web3, deployer: bytes, proofs: dict[str, list[ContributionProof]], writes: int
) -> dict[str, float]:
    deployment = deploy(w3, deployer)
    Web3Chain(w3, deployment, deployer, rpc=name).transfer(ADDRESS, 10**21)
    chain = Web3Chain(w3, deployment, KEY, rpc=name)
    net = chain.create_datanet("bench", b"\x00" * 32, "public", "open")
    assert net.id == DATANET_ID
    commitment = identity_commitment(SECRET)
    r: dict[str, float] = {}

    # Gas of the proof check alone: a transaction to the reverting wrapper, less its intrinsic cost.
    sample = proofs["sizes"][-1]
    arguments = [proof_words(sample.proof.proof), list(sample.proof.public_signals)]
    call = chain.contribution_check.functions.check(*arguments)
    data = bytes.fromhex(chain.contribution_check.encode_abi("check", args=arguments)[2:])
    sent = chain.transact(call, "check a proof", gas=1_000_000)  # a view, sent as a transaction to meter it
    r["gas proof check"] = sent.gas_used - intrinsic_gas(data)
    r["gas proof check tx"] = sent.gas_used

    # submitBatch at each batch size; the first one also inserts the contributor into the tree.
    for p in proofs["sizes"]:
        result = chain.submit_batch(net.id, p.batch_root, p.count, commitment, p.proof.proof, 0)
        r[f"gas submit {p.count}"] = result.gas_used
    r["gas first submit"] = r.pop(f"gas submit {proofs['sizes'][0].count}")
    p = proofs["first16"][0]  # the steady state at 16 (contributor already in the tree)
    r["gas submit 16"] = chain.submit_batch(net.id, p.batch_root, 16, commitment, p.proof.proof, 0).gas_used

    # Transactions per second through the client: contract writes, then submitBatch with real proofs.
    start = time.perf_counter()
    for i in range(writes):
        chain.set_allowed(net.id, "0x" + f"{i + 1:040x}", True)
    r["writes/s"] = writes / (time.perf_counter() - start)
    start = time.perf_counter()
    for p in proofs["throughput"]:
        chain.submit_batch(net.id, p.batch_root, 16, commitment, p.proof.proof, 0)
    r["submits/s"] = len(proofs["throughput"]) / (time.perf_counter() - start)

    # Proof verification time: eth_call of the check.
    times = []
    for _ in range(10):
        start = time.perf_counter()
        assert chain.check_contribution_proof(sample.proof.proof, sample.proof.public_signals)
        times.append(time.perf_counter() - start)
    r["verify ms"] = statistics.median(times) * 1000
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--submits", type=int, default=10)
    args = parser.parse_args()

    sizes = [1, 4, 8, 16]
    jobs = [(1000 + n, n) for n in sizes] + [(2000, 16)] + [(3000 + i, 16) for i in range(args.submits)]
    print(f"proving {len(jobs)} batches for the run ...", flush=True)
    with ProcessPoolExecutor() as pool:
        made = list(pool.map(make_proof, *zip(*jobs, strict=True)))
    proofs = {"sizes": made[: len(sizes)], "first16": [made[len(sizes)]], "throughput": made[len(sizes) + 1 :]}

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        devnet = Devnet(Path(tmp) / "devnet.db", secrets.token_bytes(32))
        results["devnet"] = run_backend("devnet", devnet.w3, FAUCET_KEY, proofs, args.writes)
        devnet.close()
    with running_anvil() as anvil:
        results["anvil"] = run_backend(anvil.url, anvil.w3, ANVIL_KEY, proofs, args.writes)

    d, a = results["devnet"], results["anvil"]
    for key in sorted(k for k in d if k.startswith("gas")):
        if d[key] != a[key]:
            print(f"note: {key} is {d[key]:.0f} on the devnet and {a[key]:.0f} on anvil")
    print(f"proof check: {d['gas proof check']:.0f} gas of execution ({d['gas proof check tx']:.0f} as a transaction)")
    print(f"submitBatch, a contributor's first batch (16 records, tree insert): {d['gas first submit']:.0f} gas")
    for n in sizes[1:]:
        gas = d[f"gas submit {n}"]
        print(f"submitBatch with {n:2d} records: {gas:.0f} gas, {gas / n:,.0f} per record")
    for key, label in (("writes/s", "contract writes/s"), ("submits/s", "submitBatch/s"), ("verify ms", "verify ms")):
        print(f"{label:<18} devnet {d[key]:8.1f}   anvil {a[key]:8.1f}   ratio {d[key] / a[key]:.2f}")
    print(f"gas proof check: {d['gas proof check']:.0f}")
    print(f"gas per record: {d['gas submit 16'] / 16:.0f}")
    print(f"ratio devnet/anvil tx/s: {d['writes/s'] / a['writes/s']:.2f}")


if __name__ == "__main__":
    main()
