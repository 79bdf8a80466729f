"""Where a vault's master key lives when it is not behind a passphrase: the OS keyring.

`KeyStore` is the one interface; `OsKeyring` talks to the real keyring (Secret Service, macOS Keychain,
Windows Credential Locker, KWallet) and `MemoryKeyStore` is the in-memory twin for fast unit tests. One
contract test suite (tests/test_keystore_contract.py) runs against both.

Backends that would prompt on the terminal or store secrets weakly (keyrings.alt, keyrings.cryptfile) and the
"fail"/"null" backends are never used: `os_keyring()` returns None for them, and the vault falls back to a
passphrase-wrapped key instead.
"""

from __future__ import annotations

import base64
import logging
from typing import Protocol

from storage.errors import KeyStoreUnavailable

logger = logging.getLogger(__name__)

SERVICE = "datanet"

# Modules of keyring backends that keep secrets in an OS-managed, unlocked-with-the-session store.
_TRUSTED_BACKEND_MODULES = (
    "keyring.backends.SecretService",
    "keyring.backends.libsecret",
    "keyring.backends.kwallet",
    "keyring.backends.macOS",
    "keyring.backends.Windows",
)


class KeyStore(Protocol):
    """A small secret store addressed by name (bytes in, bytes out)."""

    @property
    def backend_name(self) -> str:
        """A stable name of the backend, recorded next to the key so a change can be explained."""
        ...

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, secret: bytes) -> None: ...

    def delete(self, name: str) -> None:
        """Remove a secret; removing one that is absent is not an error."""
        ...


class MemoryKeyStore:
    """An in-process key store for unit tests; behaves like `OsKeyring` (the contract tests check)."""

    def __init__(self, backend_name: str = "memory") -> None:
        self._secrets: dict[str, bytes] = {}
        self._backend_name = backend_name

    @property
    def backend_name(self) -> str:
        return self._backend_name

    def get(self, name: str) -> bytes | None:
        return self._secrets.get(name)

    def put(self, name: str, secret: bytes) -> None:
        self._secrets[name] = bytes(secret)

    def delete(self, name: str) -> None:
        self._secrets.pop(name, None)


class OsKeyring:
    """The OS keyring through the `keyring` package; secrets are stored base64-encoded."""

    def __init__(self, backend: object) -> None:
        self._backend = backend

    @property
    def backend_name(self) -> str:
        cls = type(self._backend)
        return f"{cls.__module__}.{cls.__qualname__}"

    def get(self, name: str) -> bytes | None:
        from keyring.errors import KeyringError

        try:
            value = self._backend.get_password(SERVICE, name)  # type: ignore[attr-defined]
        except KeyringError as exc:
            raise KeyStoreUnavailable(
                f"The keyring ({self.backend_name}) refused to read the vault key ({exc.__class__.__name__}); "
                "unlock your keyring and try again."
            ) from exc
        if value is None:
            return None
        return base64.b64decode(value)

    def put(self, name: str, secret: bytes) -> None:
        from keyring.errors import KeyringError

        try:
            self._backend.set_password(SERVICE, name, base64.b64encode(secret).decode())  # type: ignore[attr-defined]
        except KeyringError as exc:
            raise KeyStoreUnavailable(
                f"The keyring ({self.backend_name}) refused to store the vault key ({exc.__class__.__name__}); "
                "unlock your keyring, or use a passphrase with --key-store passphrase."
            ) from exc

    def delete(self, name: str) -> None:
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            self._backend.delete_password(SERVICE, name)  # type: ignore[attr-defined]
        except PasswordDeleteError:
            return
        except KeyringError as exc:
            raise KeyStoreUnavailable(
                f"The keyring ({self.backend_name}) refused to delete a key ({exc.__class__.__name__})."
            ) from exc


def _trusted(backend: object) -> bool:
    return type(backend).__module__.startswith(_TRUSTED_BACKEND_MODULES)


def os_keyring() -> OsKeyring | None:
    """The OS keyring if a trusted backend is usable here, else None (headless machines, CI)."""
    try:
        import keyring
        from keyring.backends.chainer import ChainerBackend
    except ImportError:  # pragma: no cover - keyring is a hard dependency
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # keyring's backend discovery can fail in many ways; none of them is fatal here
        logger.warning("keyring backend discovery failed", exc_info=True)
        return None
    candidates = list(backend.backends) if isinstance(backend, ChainerBackend) else [backend]
    for candidate in candidates:
        if _trusted(candidate):
            return OsKeyring(candidate)
    logger.info("no trusted keyring backend (found %s)", type(backend).__module__)
    return None
