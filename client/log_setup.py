"""Logging for entry points: one 0600 file in the data directory, never the terminal, rotated by size
(`[log] rotate_mb`, `keep`). `[log] format = "json"` (or `DATANET_LOG_FORMAT=json`) writes one JSON object a line
(time, process, level, logger, message, and a traceback as `exc_info`) for a log shipper; the default is text.

Only entry points call `configure`. Modules log with `logging.getLogger(__name__)` and %-style arguments, and
never log keys, passphrases, record contents, Datanet names (a shard's uuid instead) or peers' addresses (their
peer id instead). The libraries' own lines (py-libp2p's above all) get the addresses in them blanked by
`AddressFilter` (a copied log names no peer's address: tests/test_disk_thief.py). `DATANET_TRACE` turns on debug
logging per area.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

from client.config import TRACE_AREAS, Config

LOG_FILE = Path("logs") / "datanet.log"
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
_JSON_FIELDS = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
_JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


_OURS = ("client", "storage", "prover", "tui")
# A multiaddr's network part (/ip4/…, /ip6/…, /dns4/…), and an IPv4 address with its port as Python prints one
# ('10.0.0.5', 4001), 10.0.0.5:4001.
_ADDRESS = re.compile(
    r"/(?:ip4|ip6|ip6zone|dns|dns4|dns6|dnsaddr)/[^\s'\",)\]}]+"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?:',\s*\d+|:\d+)?\b"
)


class AddressFilter(logging.Filter):
    """Blanks network addresses in the libraries' log lines (message and traceback); ours are left as written
    (they name peers by peer id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] in _OURS:
            return True
        message = record.getMessage()
        if record.exc_info:  # the traceback joins the message, so that no formatter renders it unblanked
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = _ADDRESS.sub("<address>", message), None
        return True


def formatter(json_lines: bool) -> logging.Formatter:
    """The one format of every process writing the log (the node, the CLI, the trainer child)."""
    if json_lines:
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(_JSON_FIELDS, rename_fields=_JSON_NAMES, datefmt="%Y-%m-%dT%H:%M:%S%z")
    return logging.Formatter(_FORMAT)


def log_path(config: Config) -> Path:
    return config.data_dir / LOG_FILE


def configure(config: Config) -> Path:
    """Send the project's logs to the data directory's log file; returns its path."""
    path = log_path(config)
    # The data directory is made here first (a command's log is its first file): 0700 from its creation, not
    # after the vault is made in it.
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=config.log_rotate_mb << 20, backupCount=config.log_keep, encoding="utf-8"
    )
    handler.setFormatter(formatter(config.log_format == "json"))
    handler.addFilter(AddressFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = getattr(logging, config.log_level.upper())
    for package in _OURS:
        logging.getLogger(package).setLevel(level)
    areas = TRACE_AREAS.values() if "all" in config.trace else [TRACE_AREAS[a] for a in config.trace]
    for logger_name in areas:
        logging.getLogger(logger_name).setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    return path
