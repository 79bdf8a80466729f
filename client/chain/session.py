"""Opening the chain a command works with: the embedded devnet in the data directory (the default: created,
deployed and funded on first use), or the JSON-RPC endpoint of `--rpc-url` / DATANET_RPC_URL / [chain] with the
contracts' addresses from the config or from `datanet chain deploy`.

    <data dir>/chain/devnet.db                the devnet's state (SQLCipher, 0600)
    <data dir>/chain/devnet-deployment.json   where the contracts are on it
    <data dir>/chain/deployments/<id>.json    deployments made with `datanet chain deploy` on other chains
    <data dir>/chain/index.db                 the client's own event index (SQLCipher, 0600)

Both databases are encrypted under the vault secret "chain" (`KEY_NAME`): they name this client's Datanets and
account. An earlier build's plaintext devnet.sqlite and index.sqlite are moved into them on first open.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from client.chain.deploy import deploy, load_deployment
from client.chain.devnet import FAUCET_KEY, Devnet, devnet_path
from client.chain.errors import ChainError, NotDeployed, WrongChain
from client.chain.governance import GovernanceClient
from client.chain.index import EventIndex
from client.chain.types import DEVNET_GOVERNANCE, PRODUCTION_GOVERNANCE, TOKEN, Deployment
from client.chain.web3_chain import Web3Chain, wait_for_rpc
from client.config import CHAIN_ADDRESSES, Config
from storage import sqlcipher_db
from storage.errors import StorageError
from storage.key_file import write_private_file

logger = logging.getLogger(__name__)

DEVNET_FUNDING = 100 * 10**18
DEVNET_TOKENS = 50_000_000 * TOKEN  # 5% of the devnet's supply: over the quorum, so one user can walk a proposal
T = TypeVar("T")
KEY_NAME = "chain"  # the vault secret the index and the devnet's state are encrypted under
LOCK_WAIT = 15.0
RPC_WAIT = 3.0  # seconds a command waits for a JSON-RPC endpoint to answer


@dataclass
class ChainSession:
    kind: Literal["devnet", "rpc"]
    client: Web3Chain
    chain_key: str  # "<chain id>:<genesis hash>:<ledger>": a batch submitted here is submitted only here
    devnet: Devnet | None
    index: EventIndex
    _lock_fd: int | None

    def close(self) -> None:
        self.index.close()
        if self.devnet is not None:
            self.devnet.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ChainSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chain_dir(config: Config) -> Path:
    return config.data_dir / "chain"


def _lock_devnet(folder: Path) -> int:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / "devnet.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise ChainError(
                    "The embedded devnet is in use by another datanet process; try again when it has finished."
                ) from None
            time.sleep(0.1)


def open_chain(config: Config, private_key: bytes, storage_key: bytes) -> ChainSession:
    """The chain for this config, with `private_key`'s account signing; `storage_key` (the vault secret "chain")
    encrypts the event index and the devnet's state."""
    folder = chain_dir(config)
    index = _open_storage(lambda: EventIndex(folder / "index.db", storage_key, legacy=folder / "index.sqlite"))
    if config.rpc_url is None:
        fd = _lock_devnet(folder)
        try:
            path = devnet_path(config.data_dir)
            sqlcipher_db.adopt_plaintext(path.with_name("devnet.sqlite"), path, storage_key)
            devnet = _open_storage(lambda: Devnet(path, storage_key))
            deployment = _devnet_deployment(devnet, folder / "devnet-deployment.json")
            client = Web3Chain(devnet.w3, deployment, private_key, rpc="the embedded devnet", index=index)
            _fund_from_faucet(devnet, client)
        except BaseException:
            os.close(fd)
            index.close()
            raise
        return ChainSession("devnet", client, _chain_key(client), devnet, index, fd)
    w3 = wait_for_rpc(config.rpc_url, timeout=RPC_WAIT)
    chain_id = w3.eth.chain_id
    if config.chain_id is not None and chain_id != config.chain_id:
        index.close()
        raise WrongChain(
            f"{config.rpc_url} serves chain {chain_id}, but the config expects chain {config.chain_id}; "
            "check --rpc-url."
        )
    known = _configured_deployment(config, chain_id) or load_deployment(_deployment_file(folder, chain_id))
    if known is None:
        index.close()
        raise NotDeployed(
            f"No Datanet contracts are known on chain {chain_id}; set their addresses under [chain] in config.toml, "
            f"or deploy them there with `datanet chain deploy --rpc-url {config.rpc_url}`."
        )
    client = Web3Chain(w3, known, private_key, rpc=config.rpc_url, index=index, receipt_timeout=config.receipt_timeout)
    return ChainSession("rpc", client, _chain_key(client), None, index, None)


def deploy_to_rpc(config: Config, private_key: bytes, *, devnet_governance: bool = False) -> Deployment:
    """`datanet chain deploy`: put the contracts on the configured endpoint's chain and remember where. The
    Governor's periods are production's (days) unless `devnet_governance` (minutes: trying it out, tests)."""
    if config.rpc_url is None:
        raise ChainError("The embedded devnet deploys its contracts by itself; `datanet chain deploy` needs --rpc-url.")
    w3 = wait_for_rpc(config.rpc_url, timeout=RPC_WAIT)
    deployment = deploy(w3, private_key, governance=DEVNET_GOVERNANCE if devnet_governance else PRODUCTION_GOVERNANCE)
    path = _deployment_file(chain_dir(config), deployment.chain_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_file(path, deployment.to_json().encode())
    return deployment


def reset_devnet(config: Config) -> None:
    """Throw the devnet's state away (the next command makes a new one). Local data is untouched."""
    folder = chain_dir(config)
    fd = _lock_devnet(folder)
    try:
        for name in ("devnet.db", "devnet.db-wal", "devnet.db-shm", "devnet.sqlite", "devnet-deployment.json"):
            (folder / name).unlink(missing_ok=True)
    finally:
        os.close(fd)


def _open_storage(opening: Callable[[], T]) -> T:
    """The index or the devnet opened; one that does not decrypt with this vault's key is a ChainError."""
    try:
        return opening()
    except StorageError as exc:
        raise ChainError(
            "The chain files in the data directory do not open with this vault's key (damaged, or from another "
            "vault); move the chain folder aside (`datanet chain reset` for the devnet) and run the command again."
        ) from exc


def _deployment_file(folder: Path, chain_id: int) -> Path:
    return folder / "deployments" / f"{chain_id}.json"


def _configured_deployment(config: Config, chain_id: int) -> Deployment | None:
    given = dict(config.chain_addresses)
    if not given:
        return None
    missing = [name for name in CHAIN_ADDRESSES if name not in given]
    if missing:
        raise NotDeployed(f"The [chain] section of config.toml lacks {', '.join(missing)}; give all four addresses.")
    return Deployment(
        chain_id=chain_id,
        registry=given["registry"],
        ledger=given["ledger"],
        contribution_check=given["contribution_check"],
        membership_check=given["membership_check"],
        token=given.get("token", ""),
        timelock=given.get("timelock", ""),
        governor=given.get("governor", ""),
        polls=given.get("polls", ""),
    )


def _devnet_deployment(devnet: Devnet, path: Path) -> Deployment:
    """The devnet's contracts, deployed on first use, and again when the saved ones predate governance (their
    ledger answers another ABI; the devnet's batches are submitted again to the new ledger, as on a new chain)."""
    deployment = load_deployment(path)
    if (
        deployment is not None and deployment.has_governance and len(devnet.w3.eth.get_code(deployment.ledger)) > 0  # type: ignore[arg-type]
    ):
        return deployment
    started = time.perf_counter()
    deployment = deploy(devnet.w3, FAUCET_KEY, governance=DEVNET_GOVERNANCE)
    write_private_file(path, deployment.to_json().encode())
    logger.info("contracts deployed on the devnet in %.2fs", time.perf_counter() - started)
    return deployment


def _fund_from_faucet(devnet: Devnet, client: Web3Chain) -> None:
    """On the devnet only: top the user's account up from the public faucet so gas is never a question, and give
    it governance tokens, delegated to itself, on first use (so `datanet gov propose` works on the devnet)."""
    if devnet.w3.eth.get_balance(client.address) < DEVNET_FUNDING // 10:  # type: ignore[arg-type]
        faucet_transfer(devnet, client.deployment, client.address, DEVNET_FUNDING)
    mine = GovernanceClient(client)
    if mine.power()["delegate"] is None:
        faucet = GovernanceClient(Web3Chain(devnet.w3, client.deployment, FAUCET_KEY, rpc="the embedded devnet"))
        if faucet.power()["balance"] >= DEVNET_TOKENS:
            faucet.send_tokens(client.address, DEVNET_TOKENS)
        mine.delegate()
        logger.info("governance tokens for %s from the devnet faucet", client.address)


def faucet_transfer(devnet: Devnet, deployment: Deployment, address: str, wei: int) -> None:
    """Send `wei` from the devnet's public faucet to `address` (`datanet chain fund`, first use)."""
    Web3Chain(devnet.w3, deployment, FAUCET_KEY, rpc="the embedded devnet").transfer(address, wei)
    logger.info("funded %s from the devnet faucet", address)


def _chain_key(client: Web3Chain) -> str:
    genesis = client.w3.eth.get_block(0)["hash"]
    return f"{client.deployment.chain_id}:{bytes(genesis).hex()[:16]}:{client.deployment.ledger.lower()}"
