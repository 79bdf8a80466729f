"""The disk thief: what a copied disk reveals. Two real nodes sync a Datanet with canary names, labels and texts;
one registers it on the embedded devnet, proves, submits and trains on it, and a command fails with a sentence
that names it. Then every file under both data directories, and every file the processes wrote anywhere else
(their HOME, caches and TMPDIR point into the test's folder), is searched for the canaries and for the other
node's address. Only the encrypted files may hold them (which the search cannot read)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from tests.test_node import NodeProc, make_node, records

# Random per run: a canary that matched by chance in some library file would be a different string next time.
TAG = secrets.token_hex(5)
NAME = f"wardcanary{TAG}"
LABELS = [f"labelcanary{TAG}{n}" for n in range(4)]
TEXT = f"textcanary{TAG}"


def canary_records(path: Path, count: int) -> Path:
    lines = [
        json.dumps({"text": f"{TEXT} patient note {n} " + "w" * (n % 7), "label": LABELS[n % 4]}) for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def sandbox(node: NodeProc, root: Path) -> list[Path]:
    """Point everything a process could write outside its data directory (home, caches, temporary files) into
    `root`; the folders to search."""
    folders = {name: root / name for name in ("home", "cache", "config-home", "data-home", "tmp")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    node.cli.env.update(
        HOME=str(folders["home"]),
        XDG_CACHE_HOME=str(folders["cache"]),
        XDG_CONFIG_HOME=str(folders["config-home"]),
        XDG_DATA_HOME=str(folders["data-home"]),
        TMPDIR=str(folders["tmp"]),
    )
    return [node.cli.data_dir, node.cli.config_dir, *folders.values()]


def found_in(folders: list[Path], needles: dict[str, bytes]) -> list[str]:
    hits = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                hits += [f"{what} in {path}" for what, needle in needles.items() if needle in content]
    return hits


def test_a_copied_disk_shows_no_name_label_text_or_peer_address(tmp_path: Path) -> None:
    a, b = make_node(tmp_path, "a", NAME), make_node(tmp_path, "b", NAME)
    searched = {"a": sandbox(a, tmp_path / "a-outside"), "b": sandbox(b, tmp_path / "b-outside")}
    for node in (a, b):
        node.cli.env["DATANET_CACHE_DIR"] = str(tmp_path / "shared-model-cache")  # base models only, no data
        node.cli.env["DATANET_TRACE"] = "all"  # the log at its most talkative: debug for every area of ours
        # Announcements every second (their log lines name the shard), no LAN discovery (other tests' nodes).
        (node.cli.config_dir / "config.toml").write_text("[node]\nmdns = false\nannounce_every = 1\n")
    a.cli.ok("members", NAME, "add", b.peer_id)
    b.cli.ok("members", NAME, "add", a.peer_id)
    a.cli.ok("import", NAME, str(canary_records(tmp_path / "canary.jsonl", 64)))
    try:
        a.start()
        b.start()
        b.cli.ok("--json", "sync", NAME, "--peer", a.address)  # (the announcements may have brought them first)
        assert b.control().wait(lambda _: records(b, NAME) == 64, timeout=60, on=("records.received", "job"))
        a.cli.ok("create", NAME, "--on-chain")  # on the embedded devnet: its state and the event index hold the name
        a.cli.ok("--json", "prove", NAME)
        assert len(a.cli.ok("--json", "submit", NAME).json()["submitted"]) == 4
        refused = a.cli.run("train", NAME, "--base", "tiny-causal")  # a failure whose sentence names the Datanet
        assert refused.code != 0 and NAME in refused.stderr
        trained = a.cli.ok("--json", "train", NAME, "--base", "tiny-classifier", "--threads", "1").json()
        shown = a.cli.ok("--json", "adapters", "show", trained["adapter_id"]).json()
        assert shown["labels"] == sorted(LABELS) and shown["datanet"]["name"] == NAME  # readable with the vault
        assert NAME in a.cli.ok("--json", "jobs").stdout  # and through the node
    finally:
        for node in (a, b):
            if node.proc is not None:
                node.stop()
    needles = {"the Datanet's name": NAME.encode(), "a record's text": TEXT.encode()}
    needles |= {f"label {n}": label.encode() for n, label in enumerate(LABELS)}
    hits = []
    for mine, other in (("a", b), ("b", a)):
        port = other.address.split("/tcp/")[1].split("/")[0]
        addresses = {"the peer's address": f"/tcp/{port}".encode(), "the peer's socket": f"', {port})".encode()}
        hits += found_in(searched[mine], needles | addresses)
    assert hits == [], "\n".join(hits)
