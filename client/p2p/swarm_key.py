"""A consortium's private swarm: one pre-shared key every member's node holds, in the file format other libp2p
networks use for theirs (go-libp2p's `swarm.key`), so a consortium's operators can keep one key for all:

    /key/swarm/psk/1.0.0/
    /base16/
    <64 hex digits>

py-libp2p 0.8.1 does the encryption (`new_host(psk=...)`, XSalsa20 under the key before Noise); it has no reader
of this file, so that is here (three lines, checked). The file is a secret: it must not be readable by others.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from client.errors import ConfigError

HEADER = ("/key/swarm/psk/1.0.0/", "/base16/")


def read(path: Path) -> str:
    """The key in `path` as the 64 hex digits `new_host(psk=...)` takes; a ConfigError in one sentence if the file
    is missing, readable by others or not a swarm key."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ConfigError(f"Cannot read the swarm key {path} ({reason}); check [node] swarm_key.") from None
    if mode & 0o077:
        raise ConfigError(
            f"The swarm key {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` and try again."
        )
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) != 3 or tuple(lines[:2]) != HEADER or len(lines[2]) != 64:
        raise ConfigError(
            f"{path} is not a swarm key (three lines: {HEADER[0]}, {HEADER[1]}, 64 hex digits); make one with "
            "`datanet node swarm-key FILE`."
        )
    try:
        bytes.fromhex(lines[2])
    except ValueError:
        raise ConfigError(f"{path}: the swarm key's third line must be 64 hex digits.") from None
    return lines[2].lower()


def write_new(path: Path) -> None:
    """A new random key in `path` (0600, never over an existing file)."""
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; a swarm key is never overwritten (every member holds a copy).") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(f"{HEADER[0]}\n{HEADER[1]}\n{key}\n")
