"""The compiled contracts (ABI and bytecode) the client ships: `artifacts/contracts.json`, written by
`contracts/compile.mjs` with the pinned solcjs and compared byte for byte by the tests. No compiler at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "contracts.json"


@dataclass(frozen=True, slots=True)
class Compiled:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def _document() -> dict[str, Any]:
    with ARTIFACTS.open(encoding="utf-8") as handle:
        doc: dict[str, Any] = json.load(handle)
    return doc


def contract(name: str) -> Compiled:
    entry = _document()["contracts"][name]
    return Compiled(name, entry["abi"], entry["bytecode"])


def compiler() -> str:
    return str(_document()["compiler"])


def error_abis() -> list[dict[str, Any]]:
    """Every custom error of every contract, to decode a revert whichever contract raised it."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in _document()["contracts"].values():
        for item in entry["abi"]:
            if item.get("type") == "error":
                signature = item["name"] + "(" + ",".join(i["type"] for i in item["inputs"]) + ")"
                seen[signature] = item
    return list(seen.values())
