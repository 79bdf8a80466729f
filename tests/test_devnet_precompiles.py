"""The devnet routes py-evm's BN254 precompiles to revm's native code: it must answer exactly as py-evm's own
pure-Python implementation does, for valid points and for invalid input alike."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from eth_utils.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from client.chain import devnet

bn128: Any = importlib.import_module("py_ecc.optimized_bn128")  # re-exports the curve untyped
devnet._install_native_precompiles()


def native(module: str) -> Any:
    return getattr(
        importlib.import_module(f"eth.precompiles.{module}"),
        {"ecadd": "_ecadd", "ecmul": "_ecmull", "ecpairing": "_ecpairing"}[module],
    )


def g1(k: int) -> bytes:
    x, y = bn128.normalize(bn128.multiply(bn128.G1, k))
    return int(x).to_bytes(32, "big") + int(y).to_bytes(32, "big")


def g2(k: int) -> bytes:
    x, y = bn128.normalize(bn128.multiply(bn128.G2, k))
    return b"".join(int(c).to_bytes(32, "big") for c in (x.coeffs[1], x.coeffs[0], y.coeffs[1], y.coeffs[0]))


def same(module: str, data: bytes) -> None:
    def run(fn: Any) -> Any:
        try:
            result = fn(data)
        except ValidationError:
            return "invalid"
        return result if isinstance(result, bool) else tuple(int(c.n) for c in result)

    assert run(native(module)) == run(devnet.PURE_PYTHON[module])


scalars = st.integers(min_value=0, max_value=bn128.curve_order + 5)


@settings(max_examples=15, deadline=None)
@given(a=scalars, b=scalars)
def test_ecadd_matches_py_evm(a: int, b: int) -> None:
    same("ecadd", g1(a) + g1(b))


@settings(max_examples=15, deadline=None)
@given(a=scalars, k=st.integers(min_value=0, max_value=2**256 - 1))
def test_ecmul_matches_py_evm(a: int, k: int) -> None:
    same("ecmul", g1(a) + k.to_bytes(32, "big"))


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(a=st.integers(min_value=1, max_value=1000), b=st.integers(min_value=1, max_value=1000))
def test_ecpairing_matches_py_evm(a: int, b: int) -> None:
    neg = bn128.normalize(bn128.neg(bn128.multiply(bn128.G1, a * b)))
    minus = int(neg[0]).to_bytes(32, "big") + int(neg[1]).to_bytes(32, "big")
    same("ecpairing", g1(a) + g2(b) + minus + g2(1))  # e(aG, bH) * e(-abG, H) == 1
    same("ecpairing", g1(a) + g2(b) + g1(1) + g2(1))  # != 1


@pytest.mark.parametrize(
    ("module", "data"),
    [
        ("ecadd", (1).to_bytes(32, "big") * 2 + bytes(64)),  # (1, 1) is not on the curve
        ("ecmul", (1).to_bytes(32, "big") * 3),
        ("ecpairing", (1).to_bytes(32, "big") * 6),
        ("ecpairing", b""),
    ],
)
def test_invalid_input_is_refused_alike(module: str, data: bytes) -> None:
    same(module, data)
