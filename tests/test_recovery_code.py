"""Recovery codes: round trip, forgiving input, typo detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import recovery_code
from storage.errors import WrongPassphrase


@given(st.binary(min_size=20, max_size=20))
def test_round_trip(entropy: bytes) -> None:
    code = recovery_code.encode(entropy)
    assert len(code.replace("-", "")) == 36
    assert recovery_code.decode(code) == entropy
    assert recovery_code.decode(code.lower().replace("-", " ")) == entropy


def test_lookalike_letters_are_read_as_digits() -> None:
    entropy = bytes(range(20))
    code = recovery_code.encode(entropy).replace("0", "O").replace("1", "I")
    assert recovery_code.decode(code) == entropy


def test_every_single_character_typo_is_caught() -> None:
    entropy = bytes(range(100, 120))
    code = recovery_code.encode(entropy).replace("-", "")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    for position in range(len(code)):
        for replacement in alphabet:
            if replacement == code[position]:
                continue
            typo = code[:position] + replacement + code[position + 1 :]
            with pytest.raises(WrongPassphrase, match="typo"):
                recovery_code.decode(typo)


@pytest.mark.parametrize("bad", ["", "short", "U" * 36, "!" * 36])
def test_malformed_codes_are_refused(bad: str) -> None:
    with pytest.raises(WrongPassphrase, match="not a recovery code"):
        recovery_code.decode(bad)
