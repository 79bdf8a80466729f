"""Small files sealed under a vault secret: what has to lie outside the SQLCipher files (adapter manifests) is
encrypted like them, so a copied disk shows no Datanet name or label in it.

    file = MAGIC | nonce (12 bytes) | AES-256-GCM ciphertext and tag
    associated data = the file's purpose (for a manifest: "adapter-manifest/<adapter id>")

The purpose binds a file to what it is for: a sealed file copied over another adapter's, or into another vault,
does not open. The key is a vault secret (random, wrapped under the master key in keys.json, made at first use).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import StorageError
from storage.key_file import write_private_file

MAGIC: Final = b"datanet-sealed/1\n"
_NONCE = 12


class SealedUnreadable(StorageError):
    pass


def seal(key: bytes, plaintext: bytes, purpose: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, purpose.encode())


def unseal(key: bytes, blob: bytes, purpose: str) -> bytes:
    """The plaintext; SealedUnreadable when the bytes are not a sealed file, or not this key's and purpose's
    (damaged, replaced, or moved from elsewhere: the authentication tag tells them all apart from the real one)."""
    body = blob[len(MAGIC) :]
    if not blob.startswith(MAGIC) or len(body) < _NONCE + 16:
        raise SealedUnreadable("not a sealed file")
    try:
        return AESGCM(key).decrypt(body[:_NONCE], body[_NONCE:], purpose.encode())
    except InvalidTag:
        raise SealedUnreadable("it does not open with this vault's key (damaged, or from elsewhere)") from None


def write(path: Path, key: bytes, plaintext: bytes, purpose: str) -> None:
    """Seal and write atomically, 0600."""
    write_private_file(path, seal(key, plaintext, purpose))


def read(path: Path, key: bytes, purpose: str) -> bytes:
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise SealedUnreadable(f"it cannot be read ({exc.strerror})") from None
    return unseal(key, blob, purpose)
