"""Recovery codes: 160 random bits shown once at vault creation, with a checksum that catches typos.

Format: 36 Crockford base32 characters in groups of six, e.g. ``7K2M9Q-...``. The first 2 bytes of the encoded
value are a SHA-256 checksum of the 20 random bytes, so a mistyped code is told apart from a wrong one.
Case, spaces and dashes do not matter when a code is typed back; O/o read as 0 and I/i/L/l as 1.
"""

from __future__ import annotations

import hashlib
import secrets

from storage.errors import WrongPassphrase

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)} | {"O": 0, "I": 1, "L": 1}
_RANDOM_BYTES = 20
_CHECK_BYTES = 2
_CHARS = 36  # ceil((20 + 2) * 8 / 5)


def new_recovery_code() -> str:
    """A fresh recovery code (formatted for display)."""
    return encode(secrets.token_bytes(_RANDOM_BYTES))


def encode(entropy: bytes) -> str:
    if len(entropy) != _RANDOM_BYTES:
        raise ValueError("a recovery code holds exactly 20 random bytes")
    payload = hashlib.sha256(entropy).digest()[:_CHECK_BYTES] + entropy
    number = int.from_bytes(payload, "big")
    chars = []
    for _ in range(_CHARS):
        chars.append(_ALPHABET[number & 31])
        number >>= 5
    text = "".join(reversed(chars))
    return "-".join(text[i : i + 6] for i in range(0, _CHARS, 6))


def decode(code: str) -> bytes:
    """The 20 random bytes behind a typed code; raises WrongPassphrase on a malformed or mistyped code."""
    cleaned = "".join(ch for ch in code.upper() if ch not in " -\t\n")
    if len(cleaned) != _CHARS or any(ch not in _DECODE for ch in cleaned):
        raise WrongPassphrase(
            "That is not a recovery code: it must be 36 letters and digits (dashes optional); check what you typed."
        )
    number = 0
    for ch in cleaned:
        number = (number << 5) | _DECODE[ch]
    if number >> ((_RANDOM_BYTES + _CHECK_BYTES) * 8):
        raise WrongPassphrase("The recovery code has a typo (its checksum does not match); check what you typed.")
    payload = number.to_bytes(_RANDOM_BYTES + _CHECK_BYTES, "big")
    check, entropy = payload[:_CHECK_BYTES], payload[_CHECK_BYTES:]
    if hashlib.sha256(entropy).digest()[:_CHECK_BYTES] != check:
        raise WrongPassphrase("The recovery code has a typo (its checksum does not match); check what you typed.")
    return entropy
