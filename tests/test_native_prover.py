"""The native prover's parts, each against an independent reference: its NTTs against the DFT's definition, its
witness calculator against snarkjs running the same wasm in Node, its zkey reader against the committed
verification key, and its proofs against groth16py's verifier (tampered witnesses fail)."""

from __future__ import annotations

import json
import multiprocessing
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.prover import contribution_inputs, membership_inputs
from prover import artifacts, groth16, native
from prover.errors import ArtifactMismatch, ProofInvalid
from prover.wasm_witness import WitnessCalculator, WitnessRejected

R = native.R
SNARKJS = Path(__file__).resolve().parent.parent / "prover" / "js" / "node_modules" / ".bin" / "snarkjs"


def _dft(values: list[int], root: int) -> list[int]:
    n = len(values)
    return [sum(v * pow(root, i * j, R) for j, v in enumerate(values)) % R for i in range(n)]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5).flatmap(lambda k: st.lists(st.integers(0, R - 1), min_size=1 << k, max_size=1 << k)))
def test_ntt_is_the_dft_and_the_inverse_undoes_it(values: list[int]) -> None:
    log_n = len(values).bit_length() - 1
    domain = native._domain(log_n)
    root = pow(5, (R - 1) >> log_n, R)  # ffjavascript's root of unity of order n
    assert pow(root, len(values) // 2, R) == R - 1 if len(values) > 1 else True
    forward = [int(x) % R for x in native._ntt(values, domain.twiddles, domain.reverse)]
    assert forward == _dft(values, root)
    back = native._ntt(forward, domain.inverse_twiddles, domain.reverse)
    assert [int(x) * pow(len(values), -1, R) % R for x in back] == values


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, R - 1), min_size=16, max_size=16))
def test_h_is_a_times_b_minus_c_on_the_odd_coset(values: list[int]) -> None:
    """Interpolate A and B through the n-th roots by the definition, evaluate at the odd 2n-th roots."""
    n, log_n = 8, 3
    a_evals, b_evals = values[:n], values[n:]
    c_evals = [x * y % R for x, y in zip(a_evals, b_evals, strict=True)]
    w_n, w_2n = pow(5, (R - 1) >> log_n, R), pow(5, (R - 1) >> (log_n + 1), R)
    n_inv = pow(n, -1, R)

    def coefficients(evals: list[int]) -> list[int]:
        return [c * n_inv % R for c in _dft(evals, pow(w_n, -1, R))]

    def at(coeffs: list[int], x: int) -> int:
        return sum(c * pow(x, k, R) for k, c in enumerate(coeffs)) % R

    ca, cb, cc = coefficients(a_evals), coefficients(b_evals), coefficients(c_evals)
    odd = [pow(w_2n, 2 * i + 1, R) for i in range(n)]
    expected = [(at(ca, x) * at(cb, x) - at(cc, x)) % R for x in odd]
    assert [int(h) for h in native.odd_coset_h(a_evals, b_evals, c_evals, log_n)] == expected


def _snarkjs_witness(circuit: artifacts.Circuit, inputs: dict[str, Any], tmp_path: Path) -> list[int]:
    found = artifacts.load(circuit)
    source = tmp_path / "input.json"
    source.write_text(
        json.dumps({k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in inputs.items()})
    )
    subprocess.run(
        [str(SNARKJS), "wtns", "calculate", str(found.wasm), str(source), str(tmp_path / "w.wtns")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = (tmp_path / "w.wtns").read_bytes()
    pos, sections = 12, {}
    for _ in range(struct.unpack_from("<I", data, 8)[0]):
        section, size = struct.unpack_from("<IQ", data, pos)
        sections[section] = (pos + 12, size)
        pos += 12 + size
    start, size = sections[2]
    return [int.from_bytes(data[start + i : start + i + 32], "little") for i in range(0, size, 32)]


@pytest.mark.parametrize("circuit", ["membership", "contribution"])
def test_the_witness_is_the_one_snarkjs_computes(circuit: artifacts.Circuit, tmp_path: Path) -> None:
    inputs, public = (membership_inputs if circuit == "membership" else contribution_inputs)()
    ours = WitnessCalculator(artifacts.load(circuit).wasm).calculate(inputs)
    assert ours[0] == 1 and ours[1 : 1 + len(public)] == public
    assert ours == _snarkjs_witness(circuit, inputs, tmp_path)


def test_bad_inputs_are_rejected_by_name() -> None:
    calculator = WitnessCalculator(artifacts.load("membership").wasm)
    inputs, _ = membership_inputs()
    with pytest.raises(WitnessRejected, match="no input called 'bogus'"):
        calculator.calculate({**inputs, "bogus": 1})
    with pytest.raises(WitnessRejected, match="'siblings' takes 20 values, not 19"):
        calculator.calculate({**inputs, "siblings": inputs["siblings"][:19]})
    with pytest.raises(WitnessRejected, match="not given"):
        calculator.calculate({k: v for k, v in inputs.items() if k != "secret"})
    with pytest.raises(WitnessRejected, match="assert failed"):
        calculator.calculate({**inputs, "nullifier": inputs["nullifier"] + 1})
    assert calculator.calculate(inputs)[0] == 1  # the instance is still usable afterwards


def _affine_ints(point: bytes, g2: bool) -> list[int]:
    return native._affine(point, g2)


@pytest.mark.parametrize("circuit", ["membership", "contribution"])
def test_the_zkey_reader_agrees_with_the_verification_key(circuit: artifacts.Circuit) -> None:
    found = artifacts.load(circuit)
    key = native.load_zkey(found.zkey)
    vk = json.loads(found.verification_key.read_text())
    assert key.n_public == vk["nPublic"]
    assert _affine_ints(key.alpha1, False) == [int(x) for x in vk["vk_alpha_1"][:2]]
    for name, point in (("vk_beta_2", key.beta2), ("vk_delta_2", key.delta2)):
        (x0, x1), (y0, y1) = vk[name][0], vk[name][1]
        assert _affine_ints(point, True) == [int(x0), int(x1), int(y0), int(y1)]
    assert key.domain_size >= found.constraints + key.n_public + 1


def test_a_truncated_zkey_is_refused(tmp_path: Path) -> None:
    data = artifacts.load("membership").zkey.read_bytes()
    broken = tmp_path / "broken.zkey"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactMismatch, match="truncated"):
        native.load_zkey(broken)
    broken.write_bytes(b"nope" + data[4:])
    with pytest.raises(ArtifactMismatch, match="not a snarkjs zkey"):
        native.load_zkey(broken)


@pytest.fixture(scope="module")
def membership_key() -> native.ProvingKey:
    key = native.load_zkey(artifacts.load("membership").zkey)
    native.warm_up(key)
    return key


def test_native_proofs_verify_and_a_tampered_witness_does_not(membership_key: native.ProvingKey) -> None:
    inputs, public = membership_inputs()
    witness = WitnessCalculator(artifacts.load("membership").wasm).calculate(inputs)
    proof = native.prove(membership_key, witness)
    assert groth16.verify("membership", proof, public)
    assert native.prove(membership_key, witness) != proof  # randomised: r and s are fresh each time
    tampered = list(witness)
    tampered[len(witness) // 2] = (tampered[len(witness) // 2] + 1) % R  # an internal wire
    assert not groth16.verify("membership", native.prove(membership_key, tampered), public)
    with pytest.raises(ProofInvalid, match="wires"):
        native.prove(membership_key, witness[:-1])


def test_inconsistent_public_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATANET_PROVER", "native")
    inputs, public = membership_inputs()
    with pytest.raises(ProofInvalid, match="other public values"):
        groth16.prove("membership", inputs, [public[0], public[1], public[2], public[3] + 1])


def test_an_unknown_prover_name_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATANET_PROVER", "rapidsnark")
    with pytest.raises(ProofInvalid, match="names no prover; use 'native' or 'groth16py'"):
        groth16.backend("membership")


def _prove_in_child(queue: Any) -> None:
    inputs, public = membership_inputs()
    queue.put(groth16.verify("membership", groth16.prove("membership", inputs, public), public))


def test_a_forked_child_proves_with_its_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MSM pool belongs to one process: a child forked from a process that already proved makes its own."""
    monkeypatch.setenv("DATANET_PROVER", "native")
    inputs, public = membership_inputs()
    assert groth16.verify("membership", groth16.prove("membership", inputs, public), public)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_prove_in_child, args=(queue,))
    child.start()
    assert queue.get(timeout=120) is True
    child.join(timeout=30)
    assert child.exitcode == 0
