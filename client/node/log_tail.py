"""The node's log read back for `log.tail`: the last lines of a level and above, of one area, with a text in them;
text lines (`date time pid LEVEL area: message`) and JSON lines ([log] format = "json") alike."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def tail(path: Path, lines: int, shown: set[str], text: str | None, prefix: str | None) -> list[str]:
    """The last `lines` lines whose level is in `shown`, whose logger is `prefix` or below it, holding `text`."""
    kept: deque[str] = deque(maxlen=lines)
    if not path.exists():
        return []
    with path.open(encoding="utf-8", errors="replace") as log:
        current = ""  # the area of the last line that named one (a traceback's lines belong to it)
        for line in log:
            current = _area_of(line) or current
            if prefix is not None and not (current == prefix or current.startswith(prefix + ".")):
                continue
            if _level_of(line) in shown and (text is None or text in line):
                kept.append(line.rstrip("\n"))
    return list(kept)


def _json_line(line: str) -> dict[str, Any] | None:
    """One line of a JSON log ([log] format = "json"), or None for a text line."""
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _area_of(line: str) -> str | None:
    """The logger of one of our log lines (`date time pid LEVEL client.p2p.sync: message`, or its JSON form), or
    None."""
    doc = _json_line(line)
    if doc is not None:
        return str(doc.get("logger", "")) or None
    fields = line.split(" ", 5)
    if len(fields) >= 5 and fields[3] in (*LEVELS, "CRITICAL") and fields[4].endswith(":"):
        return fields[4][:-1]
    return None


def _level_of(line: str) -> str:
    """The level field of one of our log lines (`date time pid LEVEL area: message`); INFO for anything else (a
    traceback's lines belong to the ERROR above them, and are kept with any level down to INFO)."""
    doc = _json_line(line)
    if doc is not None and doc.get("level") in (*LEVELS, "CRITICAL"):
        return str(doc["level"])
    for level in (*LEVELS, "CRITICAL"):
        if f" {level} " in line[:40]:
            return level
    return "INFO"
