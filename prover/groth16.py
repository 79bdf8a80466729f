"""The Groth16 backend: groth16py (arkworks, BN254) over the committed snarkjs ceremony keys.

Keys are loaded once per process and kept warm (a running node proves many batches). groth16py computes the
witness from the circuit in-process and does not check the circuit's constraints itself: a wrong input gives a
proof that fails verification. So `prove` always verifies before it returns (FACTS.md).
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
from typing import Any

import groth16py
import platformdirs

from prover import artifacts
from prover.artifacts import Circuit
from prover.errors import ProofInvalid

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


@cache
def _keys(circuit: Circuit) -> tuple[Any, Any]:
    found = artifacts.load(circuit)
    logger.info("loading the %s proving key (%d constraints)", circuit, found.constraints)
    pk = _load_proving_key(found)
    vk = groth16py.VerifyingKey.from_snarkjs_file(str(found.verification_key))
    return pk, groth16py.Verifier(vk)


def warm(circuit: Circuit) -> None:
    """Load a circuit's keys now (about a second) so the first proof is not slower than the rest."""
    with _lock:
        _keys(circuit)


def verify(circuit: Circuit, proof: bytes, public_signals: list[int]) -> bool:
    _, verifier = _keys(circuit)
    try:
        return bool(verifier.verify(proof, public_signals))
    except (groth16py.VerificationError, groth16py.EncodingError, ValueError):
        return False


def prove(circuit: Circuit, inputs: dict[str, Any], public_signals: list[int]) -> bytes:
    """A proof for `inputs`, checked against the expected public signals before it is returned."""
    pk, _ = _keys(circuit)
    try:
        proof: bytes = groth16py.prove(pk, inputs)
    except groth16py.WitnessError as exc:
        raise ProofInvalid(f"The {circuit} circuit rejected the inputs ({exc}).") from exc
    if not verify(circuit, proof, public_signals):
        raise ProofInvalid(
            f"The {circuit} proof did not verify: the private inputs do not satisfy the circuit for these public "
            "values (wrong secret, leaf or count)."
        )
    return proof
