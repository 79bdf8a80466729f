"""The Groth16 backend over the committed snarkjs ceremony keys: two provers, one verifier.

    native     (default) prover.native: the circuit's wasm witness in wasmtime, MSMs in mcl on both cores
    groth16py  arkworks, single-threaded; the fallback where mcl cannot load (it ships for Linux x86_64 only)

`DATANET_PROVER=native|groth16py` picks one. Keys are loaded once per process and kept warm (a running node
proves many batches). Neither prover checks every constraint itself: a wrong input can give a proof that fails
verification. So `prove` always verifies with groth16py's verifier before it returns (FACTS.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import groth16py
import platformdirs

from prover import artifacts, native
from prover.artifacts import Circuit
from prover.errors import ArtifactMismatch, ProofInvalid
from prover.wasm_witness import WitnessCalculator, WitnessRejected

Backend = Literal["native", "groth16py"]
BACKENDS: tuple[Backend, ...] = ("native", "groth16py")

logger = logging.getLogger(__name__)
_lock = threading.Lock()


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """groth16py's in-process circom compiler prints its report on file descriptor 1; keep it off the terminal."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _cache_dir() -> Path:
    return Path(os.environ.get("DATANET_CACHE_DIR") or platformdirs.user_cache_dir("datanet")) / "prover"


def _load_proving_key(found: artifacts.Artifacts) -> Any:
    """The proving key with its witness calculator. The first load compiles the circuit (about a second) and
    caches the result under the zkey's hash; later processes load the cache (about 0.4 s). A damaged cache file
    is rebuilt; a wrong one could only produce proofs that fail the verification every proof goes through."""
    version = metadata.version("groth16py")
    # Both hashes were just checked against the manifest by artifacts.load.
    cached = _cache_dir() / f"{found.circuit}-{found.zkey_sha256[:16]}-{found.source_sha256[:8]}-groth16py{version}.pk"
    if cached.exists():
        try:
            return groth16py.ProvingKey.load(str(cached))
        except Exception:  # a truncated or foreign cache file: rebuild it
            logger.warning("proving key cache %s unreadable; rebuilding it", cached)
    with _stdout_silenced():
        # The circuit is compiled again from the committed source to compute witnesses in-process; the keys
        # come from the snarkjs ceremony (same source, same circomlib Poseidon: the same wire order).
        pk, _ = groth16py.import_zkey(str(found.zkey), str(found.source), [groth16py.circomlib_path(2)])
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + f".{os.getpid()}.tmp")
        pk.save(str(tmp))
        os.replace(tmp, cached)
    except OSError:
        logger.warning("cannot cache the proving key in %s", cached.parent, exc_info=True)
    return pk


def requested_backend() -> Backend | None:
    """The backend DATANET_PROVER names, or None for the default (native where mcl loads)."""
    name = os.environ.get("DATANET_PROVER", "").strip()
    if not name:
        return None
    if name not in BACKENDS:
        raise ProofInvalid(f"DATANET_PROVER={name!r} names no prover; use 'native' or 'groth16py'.")
    return name


class _Native:
    """The native prover's warm state for one circuit (the wasm instance is not re-entrant)."""

    def __init__(self, found: artifacts.Artifacts) -> None:
        native.load_library()
        self.key = native.load_zkey(found.zkey)
        self.witness = WitnessCalculator(found.wasm)
        if self.witness.prime != native.R:
            raise ArtifactMismatch(f"{found.wasm} computes over another field than BN254; reinstall datanet.")
        self.lock = threading.Lock()
        native.warm_up(self.key)

    def prove(self, circuit: Circuit, inputs: dict[str, Any], public_signals: list[int]) -> bytes:
        with self.lock:  # one proof at a time per process: each already uses both cores
            try:
                witness = self.witness.calculate(inputs)
            except WitnessRejected as exc:
                raise ProofInvalid(f"The {circuit} circuit rejected the inputs ({exc.reason}).") from exc
            if witness[1 : 1 + self.key.n_public] != public_signals:
                raise ProofInvalid(
                    f"The {circuit} circuit computes other public values than the ones given; the inputs are "
                    "inconsistent."
                )
            return native.prove(self.key, witness)


@cache
def _prover(circuit: Circuit, backend: Backend | None) -> tuple[Backend, Any]:
    found = artifacts.load(circuit)
    logger.info("loading the %s proving key (%d constraints)", circuit, found.constraints)
    if backend in (None, "native"):
        try:
            return "native", _Native(found)
        except native.NativeUnavailable as exc:
            if backend == "native":
                raise ProofInvalid(f"The native prover cannot run here ({exc}); unset DATANET_PROVER.") from exc
            logger.info("native prover unavailable (%s); proving with groth16py", exc)
    return "groth16py", _load_proving_key(found)


@cache
def _verifier(circuit: Circuit) -> Any:
    """Verifying needs only the verification key: no proving key is loaded for it."""
    found = artifacts.load(circuit)
    return groth16py.Verifier(groth16py.VerifyingKey.from_snarkjs_file(str(found.verification_key)))


def backend(circuit: Circuit) -> Backend:
    """The prover this process uses for `circuit` (loads its keys)."""
    return _prover(circuit, requested_backend())[0]


def warm(circuit: Circuit) -> None:
    """Load a circuit's keys now (about half a second) so the first proof is not slower than the rest."""
    with _lock:
        _prover(circuit, requested_backend())
        _verifier(circuit)


def verify(circuit: Circuit, proof: bytes, public_signals: list[int]) -> bool:
    try:
        return bool(_verifier(circuit).verify(proof, public_signals))
    except (groth16py.VerificationError, groth16py.EncodingError, ValueError):
        return False


def prove(circuit: Circuit, inputs: dict[str, Any], public_signals: list[int]) -> bytes:
    """A proof for `inputs`, checked against the expected public signals before it is returned."""
    chosen, prover = _prover(circuit, requested_backend())
    if chosen == "native":
        proof: bytes = prover.prove(circuit, inputs, public_signals)
    else:
        try:
            proof = groth16py.prove(prover, inputs)
        except groth16py.WitnessError as exc:
            raise ProofInvalid(f"The {circuit} circuit rejected the inputs ({exc}).") from exc
    if not verify(circuit, proof, public_signals):
        raise ProofInvalid(
            f"The {circuit} proof did not verify: the private inputs do not satisfy the circuit for these public "
            "values (wrong secret, leaf or count)."
        )
    return proof
