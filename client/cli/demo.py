"""`datanet demo`: a non-interactive tour on the embedded defaults, in its own data directory.

It creates (or reopens) a demo vault, shows the identity, imports the sample Datanet `clinic-intents`, shows
what is inside, proves the shard file holds no plaintext, runs the integrity check, makes a zero-knowledge
proof of contribution for 16 records and submits it to the embedded devnet (whose contract verifies it), and
fine-tunes a LoRA adapter on the records locally (about 20 s on two
CPU cores). Running it again shows
that re-importing the same file adds nothing. With no keyring (a headless machine) the demo vault is locked by
the passphrase in DATANET_PASSPHRASE, or else by the announced demo passphrase: never use that for real data.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

from client import identity as identity_mod
from client.app import records as records_app
from client.app.chain import ChainService
from client.cli.context import Context
from client.cli.output import human_bytes
from client.config import Config
from client.importers import import_path
from client.node import instance
from client.sample.build_sample import EVAL_FILE, TRAIN_FILE
from client.unlock import keystore_for, new_passphrase, passphrase_from_environment
from prover.proofs import BATCH_CAPACITY
from storage.errors import ShardNotFound
from storage.vault import Vault

DEMO_PASSPHRASE = "datanet-demo"  # noqa: S105 - announced, demo vault only
DATANET = "clinic-intents"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("demo", help="a quick tour: encrypted vault, identity, sample Datanet").set_defaults(
        handler=cmd_demo
    )


def _prove_and_submit(chain: ChainService, vault: Vault, say: list[str]) -> dict[str, object]:
    """Step 6: a zero-knowledge proof of contribution for the next 16 records, verified on the embedded devnet."""
    from storage.shard import ChainBinding

    with chain.session() as session:
        info = session.client.find_datanet(DATANET)
        registry = session.client.deployment.registry.lower()
        wanted = None if info is None else ChainBinding(session.client.status().chain_id, registry, info.id)
    with vault.open_shard(DATANET) as shard:
        bound = shard.binding()
        if bound is not None and bound != wanted:  # the demo's devnet was reset: its Datanet is a new one
            shard.unbind()
    if info is None:
        chain.create(DATANET, "intent-classification", on_chain=True)
    elif bound != wanted:
        chain.join(DATANET)  # its owner is a member already: this binds the shard
    report = chain.submit(DATANET, limit=BATCH_CAPACITY, workers=1)
    listed = records_app.batches(vault, DATANET)
    status = chain.status()
    sent = [s for s in report["submitted"] if s["tx"]]
    if sent:
        batch = sent[0]
        say.append(
            f"6. Proof of contribution for {batch['count']} records (Groth16, verified locally), submitted to the "
            f"embedded devnet (chain id {status['chain_id']}, block {status['block']}), whose contract "
            f"verified it on chain ({batch['gas']:,} gas). It reveals the batch root {batch['root']}"[:-48]
            + "… and the count, never the records."
        )
    else:
        say.append(
            f"6. {len(listed['batches'])} batch(es) proven and on the devnet; {listed['pending']} records not in a "
            "batch yet."
        )
    return {
        "batches": len(listed["batches"]),
        "pending": listed["pending"],
        "submitted_now": [{"root": s["root"], "tx": s["tx"], "gas": s["gas"]} for s in sent],
        "chain_id": status["chain_id"],
    }


def _train(config: Config, vault: Vault, say: list[str]) -> dict[str, object] | None:
    """Step 7: fine-tune a LoRA adapter on the sample, locally, in a child process (skipped without torch)."""
    if importlib.util.find_spec("torch") is None:
        say.append("7. Training skipped: install the `train` extra to fine-tune adapters locally.")
        return None
    from client.app import training as training_app

    def show(event: dict[str, object]) -> None:
        if sys.stderr.isatty() and "step" in event:
            sys.stderr.write(f"\r   training: step {event['step']}/{event['total_steps']}, loss {event['loss']}")
            sys.stderr.flush()

    result = training_app.train(
        config,
        vault,
        DATANET,
        {"base": "minilm-l6", "threads": os.cpu_count() or 1},
        eval_path=EVAL_FILE,
        progress=show,
    )
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    manifest = result["manifest"]
    ev = manifest["evaluation"]
    say.append(
        f"7. LoRA adapter {result['adapter_id'][:16]} fine-tuned here on {manifest['device']} "
        f"({manifest['base_model']['name']}{', reused' if result['reused'] else ''}): accuracy on "
        f"{ev['records']} held-out messages {ev['before']['accuracy']:.2f} before, {ev['after']['accuracy']:.2f} "
        f"after; only the adapter ({manifest['training'].get('seconds', 0):.0f} s of training) would leave."
    )
    return {"adapter_id": result["adapter_id"], "before": ev["before"], "after": ev["after"]}


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    data_dir: Path = ctx.config.data_dir / "demo"
    say: list[str] = []
    keystore = keystore_for(ctx.config)
    passphrase = passphrase_from_environment(ctx.env)
    if keystore is None and passphrase is None:
        passphrase = DEMO_PASSPHRASE
        say.append(f"No keyring on this machine: the demo vault uses the demo passphrase {DEMO_PASSPHRASE!r}.")
    code = None
    if Vault.exists(data_dir):
        vault = Vault.unlock(data_dir, keystore=keystore, passphrase=lambda: passphrase)
        say.append(f"1. Vault {data_dir} unlocked with the {vault.unlocked_with}.")
    else:
        new = new_passphrase(passphrase) if keystore is None else None
        vault, code = Vault.create(data_dir, keystore=keystore, passphrase=new)
        say.append(
            f"1. Vault created in {data_dir}; its key is kept "
            + ("in the OS keyring." if keystore is not None else "under a passphrase (Argon2id).")
        )
        ctx.out.recovery_code(code, str(data_dir))
    with instance.single_instance(data_dir):  # the tour writes the demo vault itself: no node may run for it
        return _tour(ctx, data_dir, vault, code, say)


def _tour(ctx: Context, data_dir: Path, vault: Vault, code: str | None, say: list[str]) -> int:
    identity, _ = identity_mod.load_or_create(vault)
    public = identity.public()
    say.append(f"2. Identity: peer id {public.peer_id}, EVM address {public.evm_address}.")

    try:
        shard = vault.open_shard(DATANET)
    except ShardNotFound:
        shard = vault.create_shard(DATANET, "intent-classification")
    with shard:
        summary = import_path(shard, TRAIN_FILE)
        total = shard.count()
        labels = collections.Counter(json.loads(body)["label"] for _, body in shard.iter_bodies())
        first = [json.loads(body) for _, (_, body) in zip(range(3), shard.iter_bodies(), strict=False)]
        report = shard.check()
        shard_path = shard.info.path
    say.append(
        f"3. Datanet {DATANET!r} (intent-classification): {summary.added} records imported from the sample, "
        f"{summary.duplicates} already there; {total} in all, {len(labels)} labels "
        f"({', '.join(f'{k} {v}' for k, v in sorted(labels.items()))})."
    )
    say += [f"     {r['label']:<20} {r['text']}" for r in first]
    on_disk = shard_path.read_bytes() + (
        shard_path.with_name(shard_path.name + "-wal").read_bytes()
        if shard_path.with_name(shard_path.name + "-wal").exists()
        else b""
    )
    probe = first[0]["text"].encode()
    leaked = probe in on_disk or b"book_appointment" in on_disk
    say.append(
        f"4. Encrypted at rest: the shard file ({human_bytes(len(on_disk))} with its WAL) was searched for a record's "
        f"text and a label: {'FOUND (this is a bug)' if leaked else 'not found'}."
    )
    say.append(
        f"5. Integrity check (cipher pages, structure, every record against its id): "
        f"{'ok' if report.ok else '; '.join(report.problems)}."
    )
    config = dataclasses.replace(ctx.config, data_dir=data_dir, rpc_url=None)  # the demo's own devnet
    chain = ChainService(config, vault, identity)
    try:
        proved = _prove_and_submit(chain, vault, say)
    finally:
        chain.close()
    trained = _train(config, vault, say)
    say.append(f"Explore it: datanet --data-dir {data_dir} records {DATANET}   (run `datanet --help` for more)")
    ctx.out.emit(
        {
            "data_dir": str(data_dir),
            **public.as_dict(),
            "datanet": DATANET,
            "added": summary.added,
            "duplicates": summary.duplicates,
            "records": total,
            "labels": dict(labels),
            "plaintext_found": leaked,
            "check_ok": report.ok,
            "batch": proved,
            "adapter": trained,
            **({"recovery_code": code} if code else {}),
        },
        "\n".join(say),
    )
    return 0 if report.ok and not leaked else 5
