"""What a user is told when something fails: one mapping from any error to (exit code, one sentence), shared by
the CLI, the node's control API and its jobs.

Every error tree of the project (storage, client, chain, p2p, training, prover) carries its own exit code and a
message that is already a sentence to act on; the few library errors that reach the top are put in words here.
Anything else is "unexpected error (its type); see the log", and its traceback goes to the log, never to the
terminal or a client.

Exit codes (documented in the CLI's help and in docs/control-api.md):

    0   success                           5   an integrity check found problems
    1   an error the message explains     6   the chain refused or could not be reached
    2   bad usage or configuration        7   the node: none running, another already running, gone mid-call
    3   the vault cannot be unlocked      130 interrupted
    4   input rejected
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from client.errors import ClientError
from prover.errors import ProverError
from storage.errors import StorageError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_REJECTED = 4
EXIT_CHECK = 5
EXIT_CHAIN = 6
EXIT_NODE = 7
EXIT_DISK = 8  # a write stopped to keep [limits] min_free_mb free (storage.errors.DiskLow)
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Failure:
    exit_code: int
    message: str  # one sentence (or a few), never a traceback
    expected: bool  # False: a bug or an error nobody put in words; its traceback is in the log


_WORDED = (ClientError, StorageError, ProverError, KeyboardInterrupt, trio.TooSlowError, OSError)


def expected(exc: BaseException) -> bool:
    """Whether `describe` has words for `exc` (and so logs no traceback for it)."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return expected(exc.exceptions[0])
    return isinstance(exc, _WORDED)


def causes(exc: BaseException) -> str:
    """What the log says of an expected failure: the classes of the error and its causes ("P2PError <-
    SwarmException"), never the sentence, which may name a Datanet, a file or a peer's address (the user saw it;
    a copied log must not)."""
    names, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.append(type(current).__name__)
        current = current.__cause__ or current.__context__
    return " <- ".join(names)


def describe(exc: BaseException, *, log: str = "the log") -> Failure:
    """(exit code, sentence) for `exc`. An error without words of its own is logged with its traceback here, so
    the callers never log one themselves; `log` says where that is ("/path/datanet.log", "the node's log")."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:  # trio's nurseries wrap what they raise
        return describe(exc.exceptions[0], log=log)
    if isinstance(exc, ClientError | StorageError | ProverError):
        return Failure(int(exc.exit_code), str(exc) or type(exc).__name__, True)
    if isinstance(exc, KeyboardInterrupt):
        return Failure(EXIT_INTERRUPTED, "Interrupted; no half-written data was kept.", True)
    if isinstance(exc, trio.TooSlowError):
        return Failure(EXIT_ERROR, "It took too long and was given up; nothing half-done was kept. Try again.", True)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return Failure(EXIT_ERROR, f"{exc.strerror or exc}{where}; nothing half-written was kept.", True)
    logger.error("unexpected error", exc_info=exc)
    return Failure(EXIT_ERROR, f"Unexpected error ({type(exc).__name__}); details are in {log}.", False)
