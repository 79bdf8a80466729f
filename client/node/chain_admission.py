"""On-chain admission for sync: is this account a member of the shard's bound Datanet in the registry? Asked of
the configured shared chain (`--rpc-url` / [chain]), in a worker thread, with answers cached for `ttl` seconds so
a busy node does not ask for every session. The configured chain must be the binding's chain (same chain id, same
registry address): otherwise, and when the chain is unreachable, nobody is admitted by chain (the log says why).
The embedded devnet is nobody else's chain, so admission by chain is on only with a JSON-RPC endpoint.
"""

from __future__ import annotations

import logging
import time

import trio

from client.chain.errors import ChainError
from client.config import Config
from storage.shard import ChainBinding

logger = logging.getLogger(__name__)


class ChainAdmission:
    def __init__(self, config: Config, evm_private_key: bytes, storage_key: bytes, *, ttl: float = 30.0) -> None:
        self.config = config
        self.key = evm_private_key
        self.storage_key = storage_key  # the vault secret "chain" (the index of an RPC chain is encrypted too)
        self.ttl = ttl
        self._cache: dict[tuple[ChainBinding, str], tuple[bool, float]] = {}

    async def __call__(self, binding: ChainBinding, account: str) -> bool:
        key = (binding, account.lower())
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        member = await trio.to_thread.run_sync(self._ask, binding, account)
        self._cache[key] = (member, time.monotonic() + self.ttl)
        return member

    def _ask(self, binding: ChainBinding, account: str) -> bool:
        from client.chain.session import open_chain

        try:
            with open_chain(self.config, self.key, self.storage_key) as session:
                chain_id = session.client.status().chain_id
                registry = session.client.deployment.registry.lower()
                if (chain_id, registry) != (binding.chain_id, binding.registry.lower()):
                    logger.warning(
                        "a shard is bound to registry %s on chain %d, but the configured chain is %s on %d: "
                        "nobody is admitted by chain for it",
                        binding.registry,
                        binding.chain_id,
                        registry,
                        chain_id,
                    )
                    return False
                return session.client.is_member(binding.datanet_id, account)
        except ChainError as exc:
            logger.warning("cannot check on-chain membership of %s in Datanet %d: %s", account, binding.datanet_id, exc)
            return False


def chain_admission(config: Config, evm_private_key: bytes, storage_key: bytes) -> ChainAdmission | None:
    """On for a shared chain (an RPC endpoint is configured), off for the embedded devnet."""
    if config.rpc_url is None:
        return None
    return ChainAdmission(config, evm_private_key, storage_key, ttl=config.membership_ttl)
