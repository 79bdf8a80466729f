"""On-chain admission for sync: is this account a member of the Datanet in the registry? Asked of the configured
shared chain (`--rpc-url` / [chain]), in a worker thread, with answers cached for `ttl` seconds so a busy node does
not ask for every session. An unreachable chain admits nobody (and says so in the log). The embedded devnet is
nobody else's chain, so admission by chain is on only with a JSON-RPC endpoint.
"""

from __future__ import annotations

import logging
import time

import trio

from client.chain.errors import ChainError
from client.config import Config

logger = logging.getLogger(__name__)


class ChainAdmission:
    def __init__(self, config: Config, evm_private_key: bytes, *, ttl: float = 30.0) -> None:
        self.config = config
        self.key = evm_private_key
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[bool, float]] = {}

    async def __call__(self, datanet: str, account: str) -> bool:
        key = (datanet, account.lower())
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        member = await trio.to_thread.run_sync(self._ask, datanet, account)
        self._cache[key] = (member, time.monotonic() + self.ttl)
        return member

    def _ask(self, datanet: str, account: str) -> bool:
        from client.chain.session import open_chain

        try:
            with open_chain(self.config, self.key) as session:
                info = session.client.find_datanet(datanet)
                return info is not None and session.client.is_member(info.id, account)
        except ChainError as exc:
            logger.warning("cannot check on-chain membership of %s in %r: %s", account, datanet, exc)
            return False


def chain_admission(config: Config, evm_private_key: bytes) -> ChainAdmission | None:
    """On for a shared chain (an RPC endpoint is configured), off for the embedded devnet."""
    if config.rpc_url is None:
        return None
    return ChainAdmission(config, evm_private_key, ttl=config.membership_ttl)
