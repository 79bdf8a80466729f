"""What the CLI prints: human text by default, one JSON document with --json."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(slots=True)
class Output:
    json_mode: bool
    stdout: TextIO = sys.stdout
    stderr: TextIO = sys.stderr

    def emit(self, data: Any, text: str) -> None:
        """Print `data` as JSON in --json mode, else `text`."""
        if self.json_mode:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        elif text:
            self.stdout.write(text.rstrip("\n") + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """Human-only side information (stderr, so JSON on stdout stays clean)."""
        self.stderr.write(text.rstrip("\n") + "\n")
        self.stderr.flush()

    def recovery_code(self, code: str, data_dir: str) -> None:
        """Show a new vault's recovery code once, on stderr, where it cannot be mixed into piped output."""
        line = "─" * 62
        self.note(
            f"┌{line}┐\n"
            f"│ New vault in {data_dir[:47]:<47} │\n"
            f"│ RECOVERY CODE (shown once, write it down, keep it offline):  │\n"
            f"│   {code:<58} │\n"
            f"│ It unlocks the vault if the keyring or passphrase is lost.   │\n"
            f"└{line}┘"
        )


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
