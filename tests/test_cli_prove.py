"""`datanet prove`: the pending records of a Datanet become proven batches, in snarkjs's format."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from client.sample.build_sample import EVAL_FILE, TRAIN_FILE
from prover import artifacts
from prover.commitment import identity_commitment, record_digest
from prover.proofs import BatchRecord, batch_root
from storage.vault import Vault
from tests.conftest import Cli
from tests.test_prover import SNARKJS


def test_prove_batches_pending_records_and_resumes(train_cli: Cli, tmp_path: Path) -> None:
    cli = train_cli
    cli.ok("create", "clinic", "--task", "intent-classification")
    cli.ok("import", "clinic", str(TRAIN_FILE))
    identity = cli.ok("--json", "identity", "show").json()
    for bad in (["--batch", "0"], ["--jobs", "-1"], ["--datanet-id", str(2**254)]):
        refused = cli.run("prove", "clinic", *bad)
        assert refused.code == 2 and "Traceback" not in refused.stderr and "unexpected" not in refused.stderr
    first = cli.ok("--json", "prove", "clinic", "--batch", "20").json()
    assert [b["count"] for b in first["batches"]] == [16, 4]
    assert first["pending"] == 460

    batch = first["batches"][0]
    folder = Path(batch["folder"])
    public = [int(x) for x in json.loads((folder / "public.json").read_text())]
    assert public[0] == int(batch["root"], 16)
    assert public[1:3] == [16, int(identity["identity_commitment"])]
    assert public[4] == int(identity["evm_address"], 16)
    vk = artifacts.load("contribution").verification_key
    ok = subprocess.run(
        [str(SNARKJS), "groth16", "verify", str(vk), str(folder / "public.json"), str(folder / "proof.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "OK" in ok.stdout

    # The root is the Poseidon tree of the first 16 records' leaves, recomputed here from the vault.
    vault = Vault.unlock(cli.data_dir, keystore=None, passphrase=lambda: cli.env["DATANET_PASSPHRASE"])
    with vault.open_shard("clinic") as shard:
        first16 = [m.record_id for m in shard.list_records(limit=16)]
        records = [BatchRecord(record_digest(r), shard.get(r).salt) for r in first16]
        stored = shard.batches()
    assert batch_root(int(identity["identity_commitment"]), records) == int(batch["root"], 16)
    assert [b.count for b in stored] == [16, 4] and all(b.status == "proved" for b in stored)

    second = cli.ok("--json", "prove", "clinic", "--batch", "48", "--jobs", "2").json()  # three proofs, two cores
    assert [b["count"] for b in second["batches"]] == [16, 16, 16] and second["pending"] == 412
    listed = cli.ok("--json", "batches", "clinic").json()
    assert [b["count"] for b in listed["batches"]] == [16, 4, 16, 16, 16] and listed["pending"] == 412
    with vault.open_shard("clinic") as shard:  # the parallel batches hold consecutive records, in order
        metas = shard.list_records(limit=68)
        for number, batch in enumerate(second["batches"]):
            chunk = metas[20 + 16 * number : 36 + 16 * number]
            expected = batch_root(
                int(identity["identity_commitment"]),
                [BatchRecord(record_digest(m.record_id), shard.get(m.record_id).salt) for m in chunk],
            )
            assert expected == int(batch["root"], 16)
    assert identity_commitment(0) != int(identity["identity_commitment"])  # a real secret, not a placeholder

    # An adapter trained on these records names the proven batches it learned from.
    trained = cli.ok(
        "--json",
        "train",
        "clinic",
        "--base",
        "tiny-classifier",
        "--threads",
        "1",
        "--epochs",
        "1",
        "--eval",
        str(EVAL_FILE),
    ).json()
    roots = sorted(b["root"] for b in listed["batches"])
    assert trained["manifest"]["trained_on"]["batch_roots"] == roots
