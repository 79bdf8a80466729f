"""Asking for secrets on a terminal (getpass: nothing echoed), only when a person is there to answer."""

from __future__ import annotations

import getpass
import sys

from client.unlock import MIN_PASSPHRASE, NoPrompter, Prompter


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


class TerminalPrompter:
    def secret(self, prompt: str) -> str | None:
        return getpass.getpass(prompt)

    def new_secret(self, what: str) -> str | None:
        while True:
            first = getpass.getpass(f"Choose a {what} passphrase (at least {MIN_PASSPHRASE} characters): ")
            if len(first) < MIN_PASSPHRASE:
                print(f"Too short: use at least {MIN_PASSPHRASE} characters.", file=sys.stderr)
                continue
            if getpass.getpass("Type it again: ") == first:
                return first
            print("The two passphrases differ; try again.", file=sys.stderr)


def terminal() -> Prompter:
    """The terminal when stdin and stderr are one; otherwise nobody to ask."""
    return TerminalPrompter() if interactive() else NoPrompter()
