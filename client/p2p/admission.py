"""Who may sync a Datanet: the peers listed as its members in the vault, and, for a Datanet registered on a shared
chain, any account the registry lists as a member, proven by a credential that binds the account to the libp2p
peer id the Noise handshake authenticated.

    credential = account:20 bytes  signature:65 bytes
    signature  = EIP-191 personal_sign by the account's key of
                 "datanet sync admission v1\\npeer <peer id>\\ndatanet <name>"

A credential is worthless to anyone else: it names the peer id that must be at the other end of the stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eth_account import Account
from eth_account.messages import encode_defunct

CREDENTIAL_BYTES = 85
ChainMembership = Callable[[str, str], Awaitable[bool]]  # (Datanet name, account 0x...) -> a member on chain?


def _message(peer_id: str, datanet: str) -> str:
    return f"datanet sync admission v1\npeer {peer_id}\ndatanet {datanet}"


def make_credential(evm_private_key: bytes, peer_id: str, datanet: str) -> bytes:
    account = Account.from_key(evm_private_key)
    signed = account.sign_message(encode_defunct(text=_message(peer_id, datanet)))
    return bytes.fromhex(account.address[2:]) + bytes(signed.signature)


def credential_account(credential: bytes, peer_id: str, datanet: str) -> str | None:
    """The account a credential proves for this peer id and Datanet, or None if it proves nothing."""
    if len(credential) != CREDENTIAL_BYTES:
        return None
    claimed = "0x" + credential[:20].hex()
    try:
        signer = Account.recover_message(encode_defunct(text=_message(peer_id, datanet)), signature=credential[20:])
    except Exception:  # a malformed signature: no proof
        return None
    return str(signer) if signer.lower() == claimed.lower() else None
