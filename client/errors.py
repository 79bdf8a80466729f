"""Errors raised by the client (everything that is not storage or UI).

Every message is one sentence a user can act on; the CLI prints it as is.

    ClientError
    ├── ConfigError        the config file or a DATANET_* variable is invalid
    ├── ImportRejected     an input file has malformed records (carries `file:line: problem` lines)
    ├── IdentityError      a backup file cannot be read, or would replace a different identity
    └── NeedsInput         a secret is needed but there is no terminal and no variable to read it from
"""

from __future__ import annotations


class ClientError(Exception):
    """Base class of every client error; str(error) is the sentence to show."""

    exit_code = 1


class ConfigError(ClientError):
    exit_code = 2


class ImportRejected(ClientError):
    """An import refused whole; `problems` lists each bad line as `file:line: what is wrong`."""

    exit_code = 4

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class IdentityError(ClientError):
    pass


class NeedsInput(ClientError):
    exit_code = 3
