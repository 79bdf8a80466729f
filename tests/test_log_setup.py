"""The log file: JSON lines for a headless node's log shipper, rotation by size, 0600, and `log.tail` reading both
formats back by level, area and text."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import config as config_mod
from client import log_setup
from client.errors import ConfigError
from client.node import log_tail


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def configured(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> config_mod.Config:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.toml").write_text(toml)
    return config_mod.load({"DATANET_CONFIG_DIR": str(tmp_path / "config"), **(env or {})}, data_dir=str(tmp_path))


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_one_object_a_line_tracebacks_included(tmp_path: Path) -> None:
    path = log_setup.configure(configured(tmp_path, '[log]\nformat = "json"\n'))
    logging.getLogger("client.p2p.sync").info("session with %s done", "peer-a")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("client.node.jobs").exception("job failed")
    logging.getLogger("client.chain.session").warning("chain slow")
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["level"], d["logger"], d["message"]) for d in docs] == [
        ("INFO", "client.p2p.sync", "session with peer-a done"),
        ("ERROR", "client.node.jobs", "job failed"),
        ("WARNING", "client.chain.session", "chain slow"),
    ]
    assert "ValueError: boom" in docs[1]["exc_info"]
    assert {"time", "process"} <= set(docs[0])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    everything = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert [json.loads(x)["message"] for x in log_tail.tail(path, 10, everything, None, "client.p2p")] == [
        "session with peer-a done"
    ]
    warnings = log_tail.tail(path, 10, {"WARNING", "ERROR", "CRITICAL"}, None, None)
    assert [json.loads(x)["logger"] for x in warnings] == ["client.node.jobs", "client.chain.session"]
    assert len(log_tail.tail(path, 10, everything, "chain slow", None)) == 1


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_still_read_back_and_the_env_chooses_json(tmp_path: Path) -> None:
    text = configured(tmp_path, "")
    assert text.log_format == "text"
    path = log_setup.configure(text)
    logging.getLogger("client.p2p.sync").warning("slow peer")
    logging.getLogger("client.node").info("hello")
    lines = log_tail.tail(path, 10, {"WARNING", "ERROR", "CRITICAL"}, None, None)
    assert len(lines) == 1 and lines[0].endswith("WARNING client.p2p.sync: slow peer")
    assert configured(tmp_path, "", {"DATANET_LOG_FORMAT": "json"}).log_format == "json"


@pytest.mark.usefixtures("restore_logging")
def test_the_log_rotates_at_its_size_and_keeps_the_configured_number(tmp_path: Path) -> None:
    path = log_setup.configure(configured(tmp_path, '[log]\nformat = "json"\nrotate_mb = 1\nkeep = 2\n'))
    log = logging.getLogger("client.node")
    for i in range(4000):
        log.info("line %d %s", i, "x" * 500)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["datanet.log", "datanet.log.1", "datanet.log.2"]
    for p in path.parent.iterdir():
        assert p.stat().st_size <= (1 << 20) + 1024
        json.loads(p.read_text().splitlines()[-1])  # whole lines in every file


@pytest.mark.parametrize(
    "toml",
    ['[log]\nformat = "xml"\n', "[log]\nrotate_mb = 0\n", "[log]\nkeep = -1\n", '[log]\nrotate_mb = "5"\n'],
)
def test_bad_log_settings_are_one_sentence(tmp_path: Path, toml: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(tmp_path, toml)
    assert "log." in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_libraries_log_lines_name_no_address_and_ours_are_as_written(tmp_path: Path, fmt: str) -> None:
    path = log_setup.configure(configured(tmp_path, f'[log]\nformat = "{fmt}"\n'))
    library = logging.getLogger("libp2p.network.swarm")
    library.warning("dial to %s failed", "/ip4/10.20.30.40/tcp/4001/p2p/12D3KooWPeer")
    library.warning("connection from ('192.168.7.8', 50123) reset; dns /dns4/ward.example.org/tcp/443/wss")
    try:
        raise OSError("connect to 172.16.5.6:4001 refused")
    except OSError:
        library.exception("listener for /ip6/fe80::1/tcp/4001 failed")
    logging.getLogger("client.node.discovery").warning("connected to %s", "12D3KooWPeer")
    logging.getLogger("client.node.node").warning("listening on 127.0.0.1:4001 (ours: left as written)")
    text = path.read_text()
    for address in ("10.20.30.40", "192.168.7.8", "50123", "ward.example.org", "172.16.5.6", "fe80::1"):
        assert address not in text, address
    assert "dial to <address> failed" in text and "12D3KooWPeer" in text and "OSError" in text
    assert "listening on 127.0.0.1:4001" in text
