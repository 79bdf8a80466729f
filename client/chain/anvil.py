"""Starting anvil (npm `@foundry-rs/anvil`, pinned in contracts/package.json) on 127.0.0.1 for the tests and the
chain benchmark: the "real node" the same client code runs against besides the embedded devnet. Users point
`--rpc-url` at a node of their own instead.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from client.chain.errors import ChainError
from client.chain.web3_chain import wait_for_rpc

ANVIL = Path(__file__).resolve().parents[2] / "contracts" / "node_modules" / ".bin" / "anvil"
# anvil's first well-known development account (public; funded only on a local anvil).
ANVIL_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")


@dataclass(frozen=True, slots=True)
class Anvil:
    url: str
    w3: Web3
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def anvil_binary() -> Path:
    if ANVIL.exists():
        return ANVIL
    found = shutil.which("anvil")
    if found is None:
        raise ChainError("anvil is not installed; run `npm ci` in contracts/ (make check does).")
    return Path(found)


@contextmanager
def running_anvil(*extra: str) -> Iterator[Anvil]:
    """An anvil on a free 127.0.0.1 port (mining each transaction at once), stopped on exit."""
    port = _free_port()
    process = subprocess.Popen(
        [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--silent", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield Anvil(url, wait_for_rpc(url, timeout=20), process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
