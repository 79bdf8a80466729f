"""Who may sync a Datanet: the peers listed as its members in the vault, and, for a shard bound to an on-chain
Datanet, any account that Datanet's registry lists as a member, proven by a credential that binds the account to
the libp2p peer id the Noise handshake authenticated and to that one Datanet of that one registry and chain.

    credential = account:20 bytes  signature:65 bytes
    signature  = EIP-191 personal_sign by the account's key of
                 "datanet sync admission v2\\nchain <chain id>\\nregistry <0x address, lower case>\\n"
                 "datanet <on-chain id>\\npeer <peer id>"

A credential is worthless to anyone else: it names the peer id that must be at the other end of the stream, and
it proves nothing for a Datanet of the same name on another registry or chain (names are not identities: the
registry is permissionless). A shard that is not bound is admitted by the vault's member list only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eth_account import Account
from eth_account.messages import encode_defunct

from storage.shard import ChainBinding

CREDENTIAL_BYTES = 85
ChainMembership = Callable[[ChainBinding, str], Awaitable[bool]]  # (binding, account 0x...) -> a member there?


def _message(peer_id: str, binding: ChainBinding) -> str:
    return (
        f"datanet sync admission v2\nchain {binding.chain_id}\nregistry {binding.registry.lower()}\n"
        f"datanet {binding.datanet_id}\npeer {peer_id}"
    )


def make_credential(evm_private_key: bytes, peer_id: str, binding: ChainBinding) -> bytes:
    account = Account.from_key(evm_private_key)
    signed = account.sign_message(encode_defunct(text=_message(peer_id, binding)))
    return bytes.fromhex(account.address[2:]) + bytes(signed.signature)


def credential_account(credential: bytes, peer_id: str, binding: ChainBinding) -> str | None:
    """The account a credential proves for this peer id and bound Datanet, or None if it proves nothing."""
    if len(credential) != CREDENTIAL_BYTES:
        return None
    claimed = "0x" + credential[:20].hex()
    try:
        signer = Account.recover_message(encode_defunct(text=_message(peer_id, binding)), signature=credential[20:])
    except Exception:  # a malformed signature: no proof
        return None
    return str(signer) if signer.lower() == claimed.lower() else None
