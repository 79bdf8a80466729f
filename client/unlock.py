"""Getting at the vault: which key store to use, where a passphrase comes from, and first-run creation.

Passphrase sources, in order: `DATANET_PASSPHRASE_FILE` (a path; what a systemd credential or a secrets
manager provides), `$CREDENTIALS_DIRECTORY/datanet-passphrase` (systemd `LoadCredential=`), `DATANET_PASSPHRASE`,
then a `Prompter` (the CLI's terminal prompt; the TUI's dialog). With none of those, the vault raises a
one-sentence `VaultLocked`: nothing ever waits on a prompt nobody can answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from client import identity as identity_mod
from client.config import Config
from client.errors import ConfigError, NeedsInput
from client.identity import Identity
from storage.errors import VaultNotFound
from storage.keystore import KeyStore, os_keyring
from storage.vault import Vault

MIN_PASSPHRASE = 8


def keystore_for(config: Config) -> KeyStore | None:
    if config.key_store == "passphrase":
        return None
    keystore = os_keyring()
    if keystore is None and config.key_store == "keyring":
        raise ConfigError(
            "key_store is 'keyring' but no usable keyring was found (no Secret Service, Keychain or Credential "
            "Locker); start your desktop keyring, or use --key-store passphrase."
        )
    return keystore


def _read_secret_file(path: Path, what: str) -> str:
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise NeedsInput(
                f"The {what} file {path} can be read by other users (mode {mode & 0o777:o}); "
                f"run `chmod 600 {path}` and try again."
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NeedsInput(f"Cannot read the {what} file {path} ({exc.strerror}); check the path.") from None
    value = text.rstrip("\r\n")
    if not value:
        raise NeedsInput(f"The {what} file {path} is empty.")
    return value


def passphrase_from_environment(env: Mapping[str, str], prefix: str = "DATANET_") -> str | None:
    """`{prefix}PASSPHRASE_FILE`, the systemd credential (default prefix only), or `{prefix}PASSPHRASE`."""
    if env.get(f"{prefix}PASSPHRASE_FILE"):
        return _read_secret_file(Path(env[f"{prefix}PASSPHRASE_FILE"]), "passphrase")
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if prefix == "DATANET_" and credentials and (Path(credentials) / "datanet-passphrase").exists():
        return _read_secret_file(Path(credentials) / "datanet-passphrase", "passphrase")
    return env.get(f"{prefix}PASSPHRASE") or None


def new_passphrase(value: str | None, what: str = "vault") -> str | None:
    """A new passphrase from any source (a file, the environment, a prompt, the TUI), held to MIN_PASSPHRASE."""
    if value is not None and len(value) < MIN_PASSPHRASE:
        raise NeedsInput(
            f"The new {what} passphrase has {len(value)} characters; use at least {MIN_PASSPHRASE} (a few words "
            "you can remember are best)."
        )
    return value


class Prompter(Protocol):
    """Asks a person for a secret: the CLI on a terminal, the TUI in a dialog. None: nobody can answer."""

    def secret(self, prompt: str) -> str | None: ...

    def new_secret(self, what: str) -> str | None:
        """A new passphrase, confirmed, at least MIN_PASSPHRASE characters."""
        ...


class NoPrompter:
    """For processes nobody watches (a headless node, CI): every question gets no answer."""

    def secret(self, prompt: str) -> str | None:
        return None

    def new_secret(self, what: str) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class Opened:
    vault: Vault
    identity: Identity
    recovery_code: str | None  # set only when this call created the vault: show it once


def open_vault(
    config: Config, env: Mapping[str, str], prompter: Prompter | None = None, *, create: bool = True
) -> Opened:
    """Unlock the vault of `config.data_dir`, creating it (with a fresh identity) if there is none yet.

    A passphrase comes from the environment first, then from the prompter (if a person can be asked)."""
    asker = prompter or NoPrompter()
    keystore = keystore_for(config)

    def passphrase() -> str | None:
        return passphrase_from_environment(env) or asker.secret("Vault passphrase: ")

    try:
        vault = Vault.unlock(config.data_dir, keystore=keystore, passphrase=passphrase)
        code = None
    except VaultNotFound:
        if not create:
            raise
        passphrase_for_new = None
        if keystore is None:
            passphrase_for_new = new_passphrase(passphrase_from_environment(env) or asker.new_secret("vault"))
        vault, code = Vault.create(config.data_dir, keystore=keystore, passphrase=passphrase_for_new)
    identity, _ = identity_mod.load_or_create(vault)
    vault.disk.min_free_bytes = config.min_free_mb << 20  # every shard write keeps this much free
    return Opened(vault, identity, code)
