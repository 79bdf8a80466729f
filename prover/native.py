"""The project's own Groth16 prover: snarkjs's algorithm over the committed zkey, on both cores.

    witness   the circuit's circom2 WebAssembly, run by wasmtime (prover.wasm_witness)
    A, B      the zkey's constraint coefficients times the witness, in Python integers
    H         (A*B - C) moved to the odd coset of the 2n-th roots: three inverse and three forward NTTs
    proof     five multi-scalar multiplications (A, B1, B2, C, H) in mcl (mclbn256's native BN254 library),
              run in threads that release the GIL, while this thread computes H

The result is byte for byte the snarkjs calldata (prover.snarkjs_format) and is verified by groth16py's
verifier before `prover.groth16.prove` returns it, as every proof is. groth16py's prover remains the fallback
where mcl cannot load (it ships for Linux x86_64 only).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gmpy2 import mpz

from prover.errors import ArtifactMismatch, ProofInvalid

P = 21888242871839275222246405745257275088696311157297823662689037894645226208583  # base field
R = 21888242871839275222246405745257275088548364400416034343698204186575808495617  # scalar field
MONT_P = (1 << 256) % P  # mcl and snarkjs keep Fp in Montgomery form with R = 2^256
MONT_R = (1 << 256) % R
_MONT_P_INV = pow(MONT_P, -1, P)
_TWO_ADICITY = 28
_ROOT_2_28 = pow(5, (R - 1) >> _TWO_ADICITY, R)  # ffjavascript's roots of unity: 5 is its non-residue

_MCL_SNARK1 = 4  # mcl's name for the alt_bn128 curve Ethereum and circom use
_MCL_COMPILED_TIME_VAR = 44  # 4 64-bit words per Fp and per Fr
_G1 = ctypes.c_uint64 * 12
_G2 = ctypes.c_uint64 * 24
_FR = ctypes.c_uint64 * 4
_G1_BYTES = 96
_G2_BYTES = 192


class NativeUnavailable(Exception):
    """mcl could not be loaded here; the caller falls back to groth16py."""


_mcl_lock = threading.Lock()
_mcl: Any = None


def load_library() -> Any:
    """mclbn256's mcl library, switched to the alt_bn128 curve. mclbn256's own Python API stays unused: it
    initialises mcl for another BN curve, and mcl's curve is process-wide."""
    global _mcl
    with _mcl_lock:
        if _mcl is None:
            try:
                import mclbn256.mclbn256 as loaded  # ships mcl inside the wheel; Linux x86_64 only
            except Exception as exc:  # ImportError, OSError from a foreign platform's library
                raise NativeUnavailable(f"mcl is not available: {exc}") from exc
            lib = loaded.lib
            if lib.mclBn_init(_MCL_SNARK1, _MCL_COMPILED_TIME_VAR) != 0:
                raise NativeUnavailable("mcl refused the alt_bn128 curve")
            for name in ("mclBnG1_mulVec", "mclBnG2_mulVec"):
                getattr(lib, name).restype = None
            _mcl = lib
        return _mcl


def _fp_words(value: int) -> bytes:
    return value.to_bytes(32, "little")


# ---------------------------------------------------------------------------------------------------- zkey


@dataclass(slots=True)
class _Msm:
    """One MSM's bases with the infinity points left out, and which witness entries they take."""

    indices: list[int]
    bases: Any  # ctypes array of mcl points
    point_bytes: int


@dataclass(slots=True)
class ProvingKey:
    n_vars: int
    n_public: int
    domain_size: int
    log_domain: int
    alpha1: bytes
    beta1: bytes
    beta2: bytes
    delta1: bytes
    delta2: bytes
    coef_a: list[tuple[int, int, Any]]  # (constraint, signal, value as a gmpy2 integer)
    coef_b: list[tuple[int, int, Any]]
    a: _Msm
    b1: _Msm
    b2: _Msm
    c: _Msm
    h: Any  # ctypes array of domain_size G1 points (none is infinity in a real ceremony)


def _g1_from_zkey(raw: bytes) -> bytes:
    """A zkey affine G1 point (x, y in Montgomery form) as an mcl point; (0, 0) is infinity."""
    if raw == bytes(64):
        return bytes(_G1_BYTES)
    return raw + _fp_words(MONT_P)


def _g2_from_zkey(raw: bytes) -> bytes:
    if raw == bytes(128):
        return bytes(_G2_BYTES)
    return raw + _fp_words(MONT_P) + bytes(32)


def _sections(data: bytes, path: Path) -> dict[int, tuple[int, int]]:
    if data[:4] != b"zkey":
        raise ArtifactMismatch(f"{path} is not a snarkjs zkey file; reinstall datanet.")
    (count,) = struct.unpack_from("<I", data, 8)
    found: dict[int, tuple[int, int]] = {}
    pos = 12
    for _ in range(count):
        if pos + 12 > len(data):
            break
        section, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        found[section] = (pos, size)
        pos += size
    if pos != len(data) or not set(range(1, 10)) <= set(found):
        raise ArtifactMismatch(f"{path} is truncated or padded; reinstall datanet.")
    return found


def _msm_bases(data: bytes, start: int, count: int, raw_size: int, convert: Callable[[bytes], bytes]) -> _Msm:
    indices: list[int] = []
    points: list[bytes] = []
    for i in range(count):
        raw = data[start + i * raw_size : start + (i + 1) * raw_size]
        if raw != bytes(raw_size):
            indices.append(i)
            points.append(convert(raw))
    point_bytes = _G1_BYTES if raw_size == 64 else _G2_BYTES
    kind = _G1 if raw_size == 64 else _G2
    bases = (kind * len(points)).from_buffer_copy(b"".join(points)) if points else None
    return _Msm(indices, bases, point_bytes)


def load_zkey(path: Path) -> ProvingKey:
    """Parse a snarkjs Groth16 zkey (its sha256 was checked by prover.artifacts)."""
    data = path.read_bytes()
    try:
        return _parse_zkey(data, path)
    except (struct.error, KeyError, IndexError, ValueError) as exc:
        raise ArtifactMismatch(f"{path} is a malformed zkey file; reinstall datanet.") from exc


def _parse_zkey(data: bytes, path: Path) -> ProvingKey:
    sections = _sections(data, path)
    start, _ = sections[1]
    if struct.unpack_from("<I", data, start)[0] != 1:
        raise ArtifactMismatch(f"{path} is not a Groth16 key; reinstall datanet.")
    pos, _ = sections[2]
    (n8q,) = struct.unpack_from("<I", data, pos)
    q = int.from_bytes(data[pos + 4 : pos + 4 + n8q], "little")
    pos += 4 + n8q
    (n8r,) = struct.unpack_from("<I", data, pos)
    r = int.from_bytes(data[pos + 4 : pos + 4 + n8r], "little")
    pos += 4 + n8r
    if (q, r) != (P, R):
        raise ArtifactMismatch(f"{path} is not a BN254 key; reinstall datanet.")
    n_vars, n_public, domain_size = struct.unpack_from("<III", data, pos)
    pos += 12

    def take(size: int) -> bytes:
        nonlocal pos
        out = data[pos : pos + size]
        pos += size
        return out

    alpha1 = _g1_from_zkey(take(64))
    beta1 = _g1_from_zkey(take(64))
    beta2 = _g2_from_zkey(take(128))
    take(128)  # gamma2: only the verifier needs it
    delta1 = _g1_from_zkey(take(64))
    delta2 = _g2_from_zkey(take(128))

    # snarkjs writes each coefficient as value * R^2 (its Montgomery product with a plain witness value is then
    # in Montgomery form); the value is the stored number times R^-2.
    pos, _ = sections[4]
    (n_coefs,) = struct.unpack_from("<I", data, pos)
    pos += 4
    unscale = pow(MONT_R, -2, R)
    coef_a: list[tuple[int, int, Any]] = []
    coef_b: list[tuple[int, int, Any]] = []
    for _ in range(n_coefs):
        matrix, constraint, signal = struct.unpack_from("<III", data, pos)
        value = int.from_bytes(data[pos + 12 : pos + 44], "little") * unscale % R
        pos += 44
        (coef_a if matrix == 0 else coef_b).append((constraint, signal, mpz(value)))

    log_domain = domain_size.bit_length() - 1
    if 1 << log_domain != domain_size:
        raise ArtifactMismatch(f"{path} has a domain that is not a power of two; reinstall datanet.")
    n_private = n_vars - n_public - 1
    h_start, h_size = sections[9]
    if h_size != domain_size * 64:
        raise ArtifactMismatch(f"{path} has a malformed H section; reinstall datanet.")
    h_points = b"".join(_g1_from_zkey(data[h_start + i * 64 : h_start + (i + 1) * 64]) for i in range(domain_size))
    c = _msm_bases(data, sections[8][0], n_private, 64, _g1_from_zkey)
    c.indices = [i + n_public + 1 for i in c.indices]
    return ProvingKey(
        n_vars=n_vars,
        n_public=n_public,
        domain_size=domain_size,
        log_domain=log_domain,
        alpha1=alpha1,
        beta1=beta1,
        beta2=beta2,
        delta1=delta1,
        delta2=delta2,
        coef_a=coef_a,
        coef_b=coef_b,
        a=_msm_bases(data, sections[5][0], n_vars, 64, _g1_from_zkey),
        b1=_msm_bases(data, sections[6][0], n_vars, 64, _g1_from_zkey),
        b2=_msm_bases(data, sections[7][0], n_vars, 128, _g2_from_zkey),
        c=c,
        h=(_G1 * domain_size).from_buffer_copy(h_points),
    )


# ----------------------------------------------------------------------------------------------------- NTT


def _roots(log_n: int) -> int:
    return pow(_ROOT_2_28, 1 << (_TWO_ADICITY - log_n), R)


@dataclass(frozen=True, slots=True)
class _Domain:
    n: int
    reverse: list[int]  # bit-reversal permutation
    twiddles: list[list[Any]]  # per stage, the powers of that stage's root (gmpy2 integers)
    inverse_twiddles: list[list[Any]]
    coset_scale: list[Any]  # 1/n times the powers of the 2n-th root: onto the odd coset, inverse NTT's 1/n folded in


_domains: dict[int, _Domain] = {}
_R = mpz(R)


def _powers(base: int, count: int, first: int = 1) -> list[Any]:
    out, x, b = [], mpz(first), mpz(base)
    for _ in range(count):
        out.append(x)
        x = x * b % _R
    return out


def _domain(log_n: int) -> _Domain:
    found = _domains.get(log_n)
    if found is None:
        n = 1 << log_n
        reverse = [int(format(i, f"0{log_n}b")[::-1], 2) if log_n else 0 for i in range(n)]
        twiddles = [_powers(_roots(s), 1 << (s - 1)) for s in range(1, log_n + 1)]
        inverse = [_powers(pow(_roots(s), -1, R), 1 << (s - 1)) for s in range(1, log_n + 1)]
        coset_scale = _powers(_roots(log_n + 1), n, pow(n, -1, R))
        found = _Domain(n, reverse, twiddles, inverse, coset_scale)
        _domains[log_n] = found
    return found


def _ntt(values: Sequence[Any], twiddles: list[list[Any]], reverse: list[int]) -> list[Any]:
    """Iterative radix-2 transform, natural order in and out, of values below R. Sums are left unreduced (each
    stage adds at most R: below (log n + 1) R at the end) and only products are reduced; the first twiddle of
    every block is 1 and costs no product."""
    a = [values[i] for i in reverse]
    n = len(a)
    r = _R
    for i in range(0, n, 2):  # the first stage: every twiddle is 1
        u, t = a[i], a[i + 1]
        a[i], a[i + 1] = u + t, u - t + r
    half = 2
    for row in twiddles[1:]:
        step = half * 2
        for start in range(0, n, step):
            u, t = a[start], a[start + half]
            a[start], a[start + half] = u + t, u - t + r
            for j in range(1, half):
                i = start + j
                t = a[i + half] * row[j] % r
                u = a[i]
                a[i] = u + t
                a[i + half] = u - t + r
        half = step
    return a


def odd_coset_h(a_evals: Sequence[Any], b_evals: Sequence[Any], c_evals: Sequence[Any], log_n: int) -> list[Any]:
    """(A*B - C) evaluated on the odd coset of the 2n-th roots, as snarkjs's H bases expect: for each, an inverse
    NTT to coefficients, a shift by the 2n-th root, and an NTT back."""
    d = _domain(log_n)
    r = _R
    moved = []
    for evals in (a_evals, b_evals, c_evals):
        coefficients = _ntt(evals, d.inverse_twiddles, d.reverse)
        shifted = [x * s % r for x, s in zip(coefficients, d.coset_scale, strict=True)]
        moved.append(_ntt(shifted, d.twiddles, d.reverse))
    return [(x * y - z) % r for x, y, z in zip(*moved, strict=True)]


# ---------------------------------------------------------------------------------------------------- prove


_MONT = mpz(MONT_R)


def _montgomery(values: Sequence[Any]) -> list[bytes]:
    """Each scalar as mcl's Fr: Montgomery form, four little-endian 64-bit words."""
    r, mont = _R, _MONT
    return [int(v * mont % r).to_bytes(32, "little") for v in values]


def _msm(kind: Any, bases: Any, scalars: Any, count: int, g2: bool) -> bytes:
    lib = load_library()
    out = kind()
    (lib.mclBnG2_mulVec if g2 else lib.mclBnG1_mulVec)(ctypes.byref(out), bases, scalars, count)
    return bytes(out)


_pool: tuple[int, ThreadPoolExecutor] | None = None


def _executor() -> ThreadPoolExecutor:
    """Two threads for the MSMs (ctypes drops the GIL around each mcl call). One pool per process: a forked
    proving worker must not inherit its parent's threads."""
    global _pool
    with _mcl_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="msm"))
        return _pool[1]


def _submit(bases: Any, point_bytes: int, scalars: bytes, parts: int) -> list[Future[bytes]]:
    """The MSM of `scalars` over `bases`, cut into `parts` MSMs that run side by side (an MSM is a sum)."""
    g2 = point_bytes == _G2_BYTES
    kind = _G2 if g2 else _G1
    n = len(scalars) // 32
    buffer = bytearray(scalars)
    futures = []
    for k in range(parts):
        lo, hi = n * k // parts, n * (k + 1) // parts
        if hi > lo:
            part_bases = (kind * (hi - lo)).from_buffer(bases, lo * point_bytes)
            part_scalars = (_FR * (hi - lo)).from_buffer(buffer, lo * 32)
            futures.append(_executor().submit(_msm, kind, part_bases, part_scalars, hi - lo, g2))
    return futures


def _submit_msm(msm: _Msm, witness: list[bytes], parts: int) -> list[Future[bytes]]:
    if not msm.indices:
        return []
    return _submit(msm.bases, msm.point_bytes, b"".join([witness[i] for i in msm.indices]), parts)


def _add(p: bytes, q: bytes, g2: bool) -> bytes:
    kind = _G2 if g2 else _G1
    out = kind()
    (load_library().mclBnG2_add if g2 else load_library().mclBnG1_add)(
        ctypes.byref(out), ctypes.byref(kind.from_buffer_copy(p)), ctypes.byref(kind.from_buffer_copy(q))
    )
    return bytes(out)


def _sum(futures: list[Future[bytes]], g2: bool) -> bytes:
    total = bytes(_G2_BYTES if g2 else _G1_BYTES)  # z = 0: the point at infinity
    for f in futures:
        total = _add(total, f.result(), g2)
    return total


def _mul(point: bytes, scalar: int, g2: bool) -> bytes:
    lib = load_library()
    kind = _G2 if g2 else _G1
    out = kind()
    fr = _FR.from_buffer_copy((scalar * MONT_R % R).to_bytes(32, "little"))
    (lib.mclBnG2_mul if g2 else lib.mclBnG1_mul)(
        ctypes.byref(out), ctypes.byref(kind.from_buffer_copy(point)), ctypes.byref(fr)
    )
    return bytes(out)


def _affine(point: bytes, g2: bool) -> list[int]:
    """Normalised coordinates as integers: [x, y] for G1, [x.c0, x.c1, y.c0, y.c1] for G2."""
    lib = load_library()
    kind = _G2 if g2 else _G1
    out = kind()
    (lib.mclBnG2_normalize if g2 else lib.mclBnG1_normalize)(
        ctypes.byref(out), ctypes.byref(kind.from_buffer_copy(point))
    )
    raw = bytes(out)
    words = 4 if g2 else 2
    if raw[words * 32 :] == bytes(len(raw) - words * 32):  # z == 0: the point at infinity
        return [0] * words
    return [int.from_bytes(raw[i * 32 : (i + 1) * 32], "little") * _MONT_P_INV % P for i in range(words)]


def warm_up(key: ProvingKey) -> None:
    """mcl builds tables on its first G1 and G2 MSM (about 0.2 s): do that, and the NTT domain, now."""
    _domain(key.log_domain)
    for msm in (key.a, key.b2):
        count = min(16, len(msm.indices))
        if count:
            for future in _submit(msm.bases, msm.point_bytes, b"".join(_montgomery([1] * count)), 1):
                future.result()


def prove(key: ProvingKey, witness: Sequence[int]) -> bytes:
    """A Groth16 proof of `witness` as the 256-byte calldata of the snarkjs Solidity verifier (snarkjs's
    algorithm, groth16_prove.js), randomised with fresh r and s."""
    if len(witness) != key.n_vars:
        raise ProofInvalid(f"The witness has {len(witness)} values; the circuit has {key.n_vars} wires.")
    # The witness-only MSMs start at once on the pool; this thread computes H meanwhile.
    mont = _montgomery(witness)
    pending_b2 = _submit_msm(key.b2, mont, 2)  # the largest (G2) first
    pending_a = _submit_msm(key.a, mont, 1)
    pending_b1 = _submit_msm(key.b1, mont, 1)
    pending_c = _submit_msm(key.c, mont, 1)

    w = [mpz(v) for v in witness]
    r_ = _R
    a_evals: list[Any] = [0] * key.domain_size
    b_evals: list[Any] = [0] * key.domain_size
    for constraint, signal, value in key.coef_a:
        a_evals[constraint] += value * w[signal]
    for constraint, signal, value in key.coef_b:
        b_evals[constraint] += value * w[signal]
    a_evals = [x % r_ for x in a_evals]
    b_evals = [x % r_ for x in b_evals]
    c_evals = [x * y % r_ for x, y in zip(a_evals, b_evals, strict=True)]
    h = odd_coset_h(a_evals, b_evals, c_evals, key.log_domain)
    pending_h = _submit(key.h, _G1_BYTES, b"".join(_montgomery(h)), 2)

    r, s = secrets.randbelow(R), secrets.randbelow(R)
    pi_a = _add(_sum(pending_a, False), key.alpha1, False)
    pi_a = _add(pi_a, _mul(key.delta1, r, False), False)
    pi_b = _add(_sum(pending_b2, True), key.beta2, True)
    pi_b = _add(pi_b, _mul(key.delta2, s, True), True)
    pib1 = _add(_sum(pending_b1, False), key.beta1, False)
    pib1 = _add(pib1, _mul(key.delta1, s, False), False)
    pi_c = _add(_sum(pending_c, False), _sum(pending_h, False), False)
    pi_c = _add(pi_c, _mul(pi_a, s, False), False)
    pi_c = _add(pi_c, _mul(pib1, r, False), False)
    pi_c = _add(pi_c, _mul(key.delta1, (-r * s) % R, False), False)

    ax, ay = _affine(pi_a, False)
    bx0, bx1, by0, by1 = _affine(pi_b, True)
    cx, cy = _affine(pi_c, False)
    return b"".join(v.to_bytes(32, "big") for v in (ax, ay, bx1, bx0, by1, by0, cx, cy))
