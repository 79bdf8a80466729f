"""One contract, two key stores: the in-memory fake must behave like the real Secret Service."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from storage.keystore import KeyStore, MemoryKeyStore, OsKeyring


@pytest.fixture(params=["memory", "secret-service"])
def keystore(request: pytest.FixtureRequest) -> Iterator[KeyStore]:
    if request.param == "memory":
        yield MemoryKeyStore()
    else:
        real: OsKeyring = request.getfixturevalue("secret_service")
        yield real


def _name() -> str:
    return f"contract-{secrets.token_hex(6)}"


def test_absent_secret_is_none(keystore: KeyStore) -> None:
    assert keystore.get(_name()) is None


def test_put_then_get_returns_the_same_bytes(keystore: KeyStore) -> None:
    name, secret = _name(), secrets.token_bytes(32) + b"\x00\xff"
    keystore.put(name, secret)
    assert keystore.get(name) == secret
    keystore.delete(name)


def test_put_replaces(keystore: KeyStore) -> None:
    name = _name()
    keystore.put(name, b"first")
    keystore.put(name, b"second")
    assert keystore.get(name) == b"second"
    keystore.delete(name)


def test_delete_removes_and_is_idempotent(keystore: KeyStore) -> None:
    name = _name()
    keystore.put(name, b"x")
    keystore.delete(name)
    assert keystore.get(name) is None
    keystore.delete(name)  # deleting again is not an error
    assert keystore.get(name) is None


def test_names_are_independent(keystore: KeyStore) -> None:
    first, second = _name(), _name()
    keystore.put(first, b"one")
    keystore.put(second, b"two")
    assert (keystore.get(first), keystore.get(second)) == (b"one", b"two")
    keystore.delete(first)
    assert keystore.get(second) == b"two"
    keystore.delete(second)


def test_backend_name_is_stable(keystore: KeyStore) -> None:
    assert keystore.backend_name
    assert keystore.backend_name == keystore.backend_name
