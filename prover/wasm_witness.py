"""Witnesses from a circuit's circom2 WebAssembly, run by wasmtime (the protocol of circom_runtime's
witness_calculator.js): inputs go in through the shared read-write memory keyed by the FNV-1a hash of the
signal's name, the witness comes out one wire at a time. A failed `assert` or a wrong input raises
WitnessRejected with circom's message.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _bindings as ffi

from prover.errors import ProofInvalid

_CODES = {
    1: "signal not found",
    2: "too many signals set",
    3: "signal already set",
    4: "assert failed",
    5: "not enough memory",
    6: "input signal array access exceeds the size",
}


class WitnessRejected(ProofInvalid):
    def __init__(self, reason: str) -> None:
        super().__init__(f"The circuit rejected the inputs ({reason}).")
        self.reason = reason


class _CircuitException(Exception):
    """Raised by the exception handler the wasm calls; wasmtime hands it back from the call that trapped."""


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for ch in name:
        h = ((h ^ ord(ch)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _flatten(value: Any, into: list[int]) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _flatten(item, into)
    else:
        into.append(int(value))


class WitnessCalculator:
    """One instance per circuit and thread (a wasm instance is not re-entrant)."""

    def __init__(self, wasm: Path) -> None:
        self._store = wasmtime.Store(wasmtime.Engine())
        module = wasmtime.Module.from_file(self._store.engine, str(wasm))
        self._messages: list[str] = []
        self._error: list[str] = []
        i32 = wasmtime.ValType.i32()

        def exception_handler(code: int) -> None:
            self._error.append(_CODES.get(code, f"error {code}"))
            raise _CircuitException(code)

        def print_error() -> None:
            self._messages.append(self._message())

        def write_buffer() -> None:
            self._message()  # circom `log()` output: discarded

        def show_shared() -> None:
            pass

        imports = [
            wasmtime.Func(self._store, wasmtime.FuncType([i32], []), exception_handler),
            wasmtime.Func(self._store, wasmtime.FuncType([], []), print_error),
            wasmtime.Func(self._store, wasmtime.FuncType([], []), write_buffer),
            wasmtime.Func(self._store, wasmtime.FuncType([], []), show_shared),
        ]
        self._instance = wasmtime.Instance(self._store, module, imports)
        exports = self._instance.exports(self._store)
        self._memory: wasmtime.Memory = exports["memory"]  # type: ignore[assignment]
        self._fn: dict[str, wasmtime.Func] = {
            name: exports[name]  # type: ignore[misc]
            for name in (
                "getVersion",
                "getSharedRWMemoryStart",
                "init",
                "setInputSignal",
                "getInputSignalSize",
                "getRawPrime",
                "getFieldNumLen32",
                "getWitnessSize",
                "getInputSize",
                "getWitness",
                "getMessageChar",
            )
        }
        if self._call("getVersion") != 2:
            raise ProofInvalid(f"{wasm} was not made by circom 2; run prover/ceremony/regenerate.")
        self._n8 = self._call("getFieldNumLen32") * 4
        self._shared = self._call("getSharedRWMemoryStart")
        self._call("getRawPrime")
        self.prime = int.from_bytes(self._read(self._shared, self._n8), "little")
        self.size = self._call("getWitnessSize")
        self._get_witness = _unchecked_i32_call(self._store, self._fn["getWitness"])

    def _call(self, name: str, *args: int) -> int:
        result = self._fn[name](self._store, *args)
        return int(result) if result is not None else 0

    def _read(self, start: int, size: int) -> bytes:
        return bytes(self._memory.read(self._store, start, start + size))

    def _read_witness(self) -> list[int]:
        """Every wire through getWitness(i) and the shared memory. wasmtime's checked call costs about 15 us,
        five times the work, so the loop calls the exported function unchecked (its type, i32 -> (), was
        checked once) and reads the shared memory through a pointer (the memory does not grow here)."""
        get = self._get_witness
        address = ctypes.cast(self._memory.data_ptr(self._store), ctypes.c_void_p).value
        assert address is not None
        address += self._shared
        n8, string_at, from_bytes = self._n8, ctypes.string_at, int.from_bytes
        witness = []
        for i in range(self.size):
            get(i)
            witness.append(from_bytes(string_at(address, n8), "little"))
        return witness

    def _message(self) -> str:
        chars = []
        while (c := self._call("getMessageChar")) != 0:
            chars.append(chr(c))
        return "".join(chars)

    def calculate(self, inputs: Mapping[str, Any]) -> list[int]:
        """The full witness (wire 0 is the constant 1, then the public signals, then the rest)."""
        self._error.clear()
        self._messages.clear()
        try:
            self._call("init", 0)
            given = 0
            for name, value in inputs.items():
                values: list[int] = []
                _flatten(value, values)
                h = fnv1a64(name)
                msb, lsb = h >> 32, h & 0xFFFFFFFF
                expected = self._call("getInputSignalSize", _i32(msb), _i32(lsb))
                if expected < 0:
                    raise WitnessRejected(f"it has no input called {name!r}")
                if len(values) != expected:
                    raise WitnessRejected(f"its input {name!r} takes {expected} values, not {len(values)}")
                for i, v in enumerate(values):
                    self._memory.write(self._store, (v % self.prime).to_bytes(self._n8, "little"), self._shared)
                    self._call("setInputSignal", _i32(msb), _i32(lsb), i)
                    given += 1
            if given < self._call("getInputSize"):
                raise WitnessRejected("some of its inputs were not given")
            return self._read_witness()
        except (wasmtime.WasmtimeError, _CircuitException) as exc:
            reason = self._error[0] if self._error else "it trapped"
            detail = f": {self._messages[0].strip()}" if self._messages else ""
            raise WitnessRejected(f"{reason}{detail}") from exc


def _unchecked_i32_call(store: wasmtime.Store, func: wasmtime.Func) -> Callable[[int], None]:
    """A fast caller of an exported `(i32) -> ()` function; a trap raises WasmtimeError as the checked call does."""
    if [str(t) for t in func.type(store).params] != ["i32"] or func.type(store).results:
        raise TypeError("the circuit's getWitness export has an unexpected type")
    context = store._context()
    target = ctypes.byref(func._func)
    slot = (ffi.wasmtime_val_raw_t * 1)()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    call = ffi.wasmtime_func_call_unchecked

    def invoke(value: int) -> None:
        slot[0].i32 = value
        error = call(context, target, slot, 1, ctypes.byref(trap))
        if error or trap:
            raise wasmtime.WasmtimeError("the witness calculator trapped")

    return invoke


def _i32(value: int) -> int:
    """An unsigned 32-bit value as the signed i32 wasmtime passes."""
    return value - (1 << 32) if value >= 1 << 31 else value
