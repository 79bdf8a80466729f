"""Configuration: TOML file, environment and flags, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.config import load
from client.errors import ConfigError


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"DATANET_CONFIG_DIR": str(tmp_path), **extra}


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load(_env(tmp_path), data_dir=str(tmp_path / "d"))
    assert config.data_dir == tmp_path / "d"
    assert (config.key_store, config.log_level, config.trace) == ("auto", "info", frozenset())
    assert config.node_nice == 10  # the node yields the CPU to what the user runs


def test_the_nodes_priority_is_configurable(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[node]\nnice = 0\n")
    assert load(_env(tmp_path)).node_nice == 0
    assert load(_env(tmp_path, DATANET_NODE_NICE="5")).node_nice == 5  # the environment over the file
    with pytest.raises(ConfigError, match=r"node\.nice must be a whole number from 0"):
        load(_env(tmp_path, DATANET_NODE_NICE="high"))


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'data_dir = "/from/file"\n[vault]\nkey_store = "keyring"\n[log]\nlevel = "debug"\ntrace = ["vault"]\n'
    )
    from_file = load(_env(tmp_path))
    assert (from_file.data_dir, from_file.key_store, from_file.log_level) == (Path("/from/file"), "keyring", "debug")
    assert from_file.trace == {"vault"}
    from_env = load(
        _env(tmp_path, DATANET_DATA_DIR="/from/env", DATANET_KEY_STORE="passphrase", DATANET_TRACE="import,identity")
    )
    assert (from_env.data_dir, from_env.key_store) == (Path("/from/env"), "passphrase")
    assert from_env.trace == {"import", "identity"}
    from_flags = load(_env(tmp_path, DATANET_DATA_DIR="/from/env"), data_dir="/from/flag", key_store="auto")
    assert (from_flags.data_dir, from_flags.key_store) == (Path("/from/flag"), "auto")


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("data_dir = [", "not valid TOML"),
        ("colour = 'blue'", "unknown setting 'colour'"),
        ("[vault]\npassword = 'x'", "unknown setting vault.password"),
        ("[vault]\nkey_store = 'floppy'", "key_store must be one of auto, keyring, passphrase"),
        ("[log]\nlevel = 'loud'", "log.level must be one of"),
        ("[log]\ntrace = ['radio']", "unknown area"),
        ("vault = 3", r"\[vault\] must be a table"),
        ("[node]\nnice = 20", "node.nice must be a whole number from 0"),
        ("[node]\nnice = true", "node.nice must be a whole number from 0"),
    ],
)
def test_bad_configuration_is_named(tmp_path: Path, toml: str, problem: str) -> None:
    (tmp_path / "config.toml").write_text(toml)
    with pytest.raises(ConfigError, match=problem):
        load(_env(tmp_path))


def test_global_flags_may_come_after_the_command_and_nothing_after_a_double_dash_moves() -> None:
    from client.cli.main import hoist_global_flags

    assert hoist_global_flags(["status", "--json"]) == ["--json", "status"]
    assert hoist_global_flags(["records", "ward", "list", "--data-dir", "/d", "--limit", "5"]) == [
        "--data-dir",
        "/d",
        "records",
        "ward",
        "list",
        "--limit",
        "5",
    ]
    assert hoist_global_flags(["sync", "w", "--rpc-url=http://x", "--peer", "p"]) == [
        "--rpc-url=http://x",
        "sync",
        "w",
        "--peer",
        "p",
    ]
    assert hoist_global_flags(["records", "ward", "delete", "--", "--json"]) == [
        "records",
        "ward",
        "delete",
        "--",
        "--json",
    ]


def test_the_metrics_endpoint_is_opt_in_and_on_loopback_only(tmp_path: Path) -> None:
    assert load(_env(tmp_path)).metrics is None
    (tmp_path / "config.toml").write_text('[metrics]\nlisten = "127.0.0.1:9464"\n')
    assert load(_env(tmp_path)).metrics == ("127.0.0.1", 9464)
    assert load(_env(tmp_path, DATANET_METRICS="[::1]:9100")).metrics == ("::1", 9100)
    for exposed in ("0.0.0.0:9464", "10.0.0.5:9464", "[::]:9464", "metrics.example.org:9464"):
        with pytest.raises(ConfigError, match="loopback interface only"):
            load(_env(tmp_path, DATANET_METRICS=exposed))
    with pytest.raises(ConfigError, match=r"such as 127\.0\.0\.1:9464"):
        load(_env(tmp_path, DATANET_METRICS="127.0.0.1"))
