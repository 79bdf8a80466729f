"""Errors of the chain client. Every message is one sentence a user can act on; the CLI prints it as is.

ChainError
├── ChainUnreachable     the JSON-RPC endpoint does not answer
├── WrongChain           the endpoint serves another chain than the one configured or deployed to
├── NotDeployed          the contracts are not on this chain (no addresses configured, or no code there)
├── InsufficientFunds    the account cannot pay for the transaction's gas and value
├── TransactionReverted  the contract refused the transaction (carries the decoded error name and arguments)
└── TransactionLost      a sent transaction has no receipt yet (the node went away); re-run to resume
"""

from __future__ import annotations

from typing import Any

from client.errors import ClientError


class ChainError(ClientError):
    exit_code = 6


class ChainUnreachable(ChainError):
    pass


class WrongChain(ChainError):
    pass


class NotDeployed(ChainError):
    pass


class InsufficientFunds(ChainError):
    pass


class TransactionReverted(ChainError):
    """`error` is the contract's custom error name (or "Error" for a require message), `args` its arguments."""

    def __init__(self, message: str, error: str, args: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.error = error
        self.error_args = args


class TransactionLost(ChainError):
    pass
