"""The embedded devnet: an in-process EVM (py-evm through eth-tester) behind web3's provider interface, the
default chain of a new user. No server to start; its state lives in one SQLCipher file in the data directory and
survives restarts.

Two things make it usable for this project (FACTS.md):
- py-evm's BN254 precompiles (ecAdd, ecMul, ecPairing) are pure Python: a Groth16 check took 2-3.5 s. They are
  routed to revm's native ones (pyrevm), so a proof verifies in milliseconds; py-evm still charges the gas.
- py-evm has no disk backend: `SqliteKV` is one, committed once per mined block, so a crash loses at most the
  block being built and never leaves a half-written one.

The chain id is `DEVNET_CHAIN_ID`. A faucet account whose key is public (`FAUCET_KEY`, devnet only) holds the
genesis balance and funds the user's account on request.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, cast

from eth.abc import BlockHeaderAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound, Revert, VMError
from eth.vm.forks.prague import PragueVM
from eth_keys.datatypes import PrivateKey
from eth_tester import EthereumTester
from eth_tester.backends.pyevm import main as pyevm_main
from eth_tester.backends.pyevm.main import PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_typing import Address, BlockNumber
from eth_utils.exceptions import ValidationError
from web3 import EthereumTesterProvider, Web3
from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return

from storage import sqlcipher_db

logger = logging.getLogger(__name__)

DEVNET_CHAIN_ID = 0x44617461  # "Data"
FAUCET_KEY = bytes.fromhex("d47a6e7f1c2b3e4d5f60718293a4b5c6d7e8f90112233445566778899aabbcc1")
FAUCET_BALANCE = 10**9 * 10**18
GAS_LIMIT = 60_000_000


class SqliteKV(BaseDB):
    """py-evm's key-value store in one SQLCipher file (0600, the project's cipher profile: the devnet's state holds
    this client's Datanets, transactions and account). Writes go into an open transaction that `commit` makes
    durable; eth-tester mines a block per transaction and the backend commits after each block."""

    def __init__(self, path: Path, key: bytes) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = path
        self._con = sqlcipher_db.open_or_create(path, key)
        self._con.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        self._con.execute("BEGIN")
        self._lock = threading.Lock()

    def __getitem__(self, key: bytes) -> bytes:
        with self._lock:
            row = self._con.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return cast(bytes, row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: bytes) -> None:
        with self._lock:
            cursor = self._con.execute("DELETE FROM kv WHERE k = ?", (key,))
        if cursor.rowcount == 0:
            raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        with self._lock:
            return self._con.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    def commit(self) -> None:
        with self._lock:
            self._con.execute("COMMIT")
            self._con.execute("BEGIN")

    def close(self) -> None:
        with self._lock:
            self._con.execute("COMMIT")
            self._con.close()


# --- native BN254 precompiles -------------------------------------------------------------------------------


class _NativeBn254:
    """revm's ecAdd/ecMul/ecPairing, called as precompiles of a private pyrevm instance."""

    def __init__(self) -> None:
        import pyrevm

        self._evm = pyrevm.EVM()
        self._caller = "0x" + "00" * 19 + "01"
        self._lock = threading.Lock()

    def call(self, address: int, data: bytes) -> bytes:
        with self._lock:
            try:
                return bytes(self._evm.message_call(self._caller, f"0x{address:040x}", calldata=data, gas=10**9))
            except RuntimeError as exc:  # revm halts on a point off the curve or a malformed input
                raise ValidationError(str(exc)) from exc


_native: _NativeBn254 | None = None
PURE_PYTHON: dict[str, Any] = {}  # py-evm's own implementations, kept for the equivalence test


def _install_native_precompiles() -> None:
    """Route py-evm's BN254 arithmetic to revm (once per process). Gas accounting stays py-evm's."""
    global _native
    if _native is not None:
        return
    _native = native = _NativeBn254()

    def pairing(data: Any) -> bool:
        return native.call(8, bytes(data))[-1:] == b"\x01"

    def add(data: Any) -> tuple[Any, Any]:
        return _to_point(native.call(6, _pad(bytes(data), 128)))

    def mul(data: Any) -> tuple[Any, Any]:
        return _to_point(native.call(7, _pad(bytes(data), 96)))

    # The package re-exports the precompile functions under the modules' names: patch the modules themselves.
    for module, name in (("ecpairing", "_ecpairing"), ("ecadd", "_ecadd"), ("ecmul", "_ecmull")):
        PURE_PYTHON[module] = getattr(importlib.import_module(f"eth.precompiles.{module}"), name)
    setattr(importlib.import_module("eth.precompiles.ecpairing"), "_ecpairing", pairing)  # noqa: B010
    setattr(importlib.import_module("eth.precompiles.ecadd"), "_ecadd", add)  # noqa: B010
    setattr(importlib.import_module("eth.precompiles.ecmul"), "_ecmull", mul)  # noqa: B010


def _pad(data: bytes, size: int) -> bytes:
    return data[:size].ljust(size, b"\x00")


def _to_point(out: bytes) -> tuple[Any, Any]:
    """py-evm's ecadd/ecmul precompiles take back an affine (x, y) of field elements and encode `.n` of each."""
    from py_ecc.fields import optimized_bn128_FQ as FQ

    return FQ(int.from_bytes(out[:32], "big")), FQ(int.from_bytes(out[32:64], "big"))


# --- the chain ----------------------------------------------------------------------------------------------


class DevnetChain(MiningChain):
    chain_id = DEVNET_CHAIN_ID
    vm_configuration = ((BlockNumber(0), PragueVM),)

    def create_header_from_parent(self, parent_header: BlockHeaderAPI, **header_params: Any) -> BlockHeaderAPI:
        header_params["gas_limit"] = parent_header.gas_limit  # a constant gas limit, as eth-tester keeps it
        return super().create_header_from_parent(parent_header, **header_params)

    def get_transaction_builder(self) -> Any:
        return self.get_vm().get_transaction_builder()


class PersistentBackend(PyEVMBackend):  # type: ignore[misc]
    """eth-tester's py-evm backend over `SqliteKV`: opens the stored chain at its head, or makes the genesis."""

    def __init__(self, path: Path, key: bytes) -> None:  # not calling super().__init__ (it builds a memory chain)
        _install_native_precompiles()
        self.kv = SqliteKV(path, key)
        base_db = AtomicDB(self.kv)
        faucet = PrivateKey(FAUCET_KEY)
        self.account_keys = (faucet,)
        try:
            ChainDB(base_db).get_canonical_head()
        except CanonicalHeadNotFound:
            params = pyevm_main.get_default_genesis_params({"gas_limit": GAS_LIMIT, "timestamp": int(time.time())})
            state: Any = {Address(faucet.public_key.to_canonical_address()): _account(FAUCET_BALANCE)}
            self.chain = DevnetChain.from_genesis(base_db, params, state)
            self.kv.commit()
            logger.info("devnet created at %s", path)
        else:
            self.chain = DevnetChain(base_db)
            logger.info("devnet opened at %s, block %d", path, self.chain.get_canonical_head().block_number)

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = pyevm_main.ZERO_ADDRESS) -> Any:
        hashes = super().mine_blocks(num_blocks, coinbase)
        self.kv.commit()
        return hashes

    def call(self, transaction: Any, block_number: Any = "latest") -> Any:
        """eth-tester's `call`, but a revert keeps its raw data (eth-tester turns it into text)."""
        transaction = {"gas": self._max_available_gas(), **transaction}
        unsigned = self._get_normalized_and_unsigned_evm_transaction(transaction, block_number)
        spoofed = pyevm_main.EVMSpoofTransaction(unsigned, from_=transaction["from"])
        computation = pyevm_main._execute_and_revert_transaction(self.chain, spoofed, block_number)
        if computation.is_error:
            error = computation._error
            raw = error.args[0] if isinstance(error, Revert) and error.args else b""
            raise TransactionFailed(raw if isinstance(raw, bytes) else str(error).encode())
        return computation.output

    def close(self) -> None:
        self.kv.close()


def _account(balance: int) -> dict[str, Any]:
    return {"balance": balance, "storage": {}, "code": b"", "nonce": 0}


class _Reverted(Exception):
    def __init__(self, data: bytes) -> None:
        super().__init__("execution reverted")
        self.data = data


def _keep_revert_data(delegator: Any) -> Any:
    """eth-tester reports a revert as an exception whose text holds the data's repr; keep the bytes instead."""

    def call(tester: Any, params: Any) -> Any:
        try:
            return delegator(tester, params)
        except TransactionFailed as exc:
            raw = exc.args[0] if exc.args else b""
            if isinstance(raw, Exception):
                raw = raw.args[0] if raw.args else b""
            raise _Reverted(raw if isinstance(raw, bytes) else b"") from None

    return call


# Requests whose answer depends on the time (a proposal's state, a poll's deadline, a challenge period).
CLOCKED = frozenset({"eth_call", "eth_estimateGas"})


class DevnetProvider(EthereumTesterProvider):
    """web3's eth-tester provider answering like a real node: the devnet's chain id, and reverts as JSON-RPC
    errors with their data (code 3), so that web3 raises the same decoded errors for both.

    A devnet mines only when a transaction comes, so its clock would stop between them, and what a transaction
    changed would stay "now" (voting power counts from the block after a delegation). Before a call, as on a real
    chain whose blocks keep coming, a block is mined when the last one held transactions or the clock is behind
    the time. (Blocks a second apart at least: many transactions in a second put the devnet's clock ahead.)"""

    def __init__(self, tester: EthereumTester) -> None:
        endpoints = {area: dict(methods) for area, methods in API_ENDPOINTS.items()}
        endpoints["eth"]["chainId"] = static_return(DEVNET_CHAIN_ID)
        for name in ("call", "estimateGas", "sendTransaction", "sendRawTransaction"):
            endpoints["eth"][name] = _keep_revert_data(endpoints["eth"][name])
        super().__init__(tester, api_endpoints=endpoints)

    def make_request(self, method: Any, params: Any) -> Any:
        if method in CLOCKED:
            self._keep_time()
        try:
            return super().make_request(method, params)
        except _Reverted as exc:
            error = {"code": 3, "message": "execution reverted", "data": "0x" + exc.data.hex()}
            return {"id": repr(self._current_request_id), "jsonrpc": "2.0", "error": error}
        except ValidationError as exc:  # py-evm refusing a transaction: answer as a node would
            text = str(exc)
            message = f"insufficient funds for gas * price + value ({text})" if "afford" in text else text
            return {
                "id": repr(self._current_request_id),
                "jsonrpc": "2.0",
                "error": {"code": -32000, "message": message},
            }

    def _keep_time(self) -> None:
        tester = self.ethereum_tester
        assert tester is not None
        now = int(time.time())
        latest = tester.get_block_by_number("latest")
        if not latest["transactions"] and now <= int(latest["timestamp"]):
            return
        # eth-tester mines the pending block at the time it was opened, then opens the next one at "now".
        if int(tester.get_block_by_number("pending")["timestamp"]) < now:
            tester.time_travel(now + 1)  # mines a block stamped `now`
        else:
            tester.mine_blocks(1)


class Devnet:
    """An opened devnet: `w3` talks to it like to any node."""

    def __init__(self, path: Path, key: bytes) -> None:
        """Open (or make) the devnet stored at `path`, encrypted with `key` (the vault secret "chain")."""
        self.path = path
        self.backend = PersistentBackend(path, key)
        self.tester = EthereumTester(backend=self.backend)
        self.w3 = Web3(DevnetProvider(self.tester))

    def close(self) -> None:
        self.backend.close()


def devnet_path(data_dir: Path) -> Path:
    return data_dir / "chain" / "devnet.db"


__all__ = ["DEVNET_CHAIN_ID", "FAUCET_KEY", "Devnet", "VMError", "devnet_path"]
