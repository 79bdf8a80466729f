"""Argument types the commands share, checked while parsing (a bad value is a usage error, exit 2, not a failure
of the command)."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """A whole number of at least 1 (a count, a job count, a proposal's or a poll's number)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)
