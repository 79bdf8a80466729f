"""The TUI's keys from `<config dir>/tui.toml`: a preset (`default` or `vi`) and any binding moved to other keys.

    preset = "vi"                 # j and k move down and up in tables and lists, g and G to the top and bottom
    [keys]
    "chain.submit" = "S"          # a binding's id (shown by `datanet tui --keys`) = its keys, comma-separated
    "screen.log" = "7,f7"

A file that cannot be read, or names a binding that does not exist, is one sentence in the app and changes nothing.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

FILE = "tui.toml"
PRESETS = ("default", "vi")
VI_MOVES = {"j": "cursor_down", "k": "cursor_up", "g": "scroll_top", "G": "scroll_bottom"}
_KEYS = re.compile(r"^[a-z0-9_+]+(,[a-z0-9_+]+)*$", re.IGNORECASE)


class KeymapError(ValueError):
    """The keymap file is not what it should be: one sentence that names the file and what to fix."""


@dataclass(frozen=True, slots=True)
class Keys:
    vi: bool = False
    bindings: dict[str, str] = field(default_factory=dict)  # binding id -> its keys


def load(path: Path, known: Collection[str] = ()) -> Keys:
    """The keys of `path` (none: the defaults). Binding ids are checked against `known` when it is given."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Keys()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeymapError(f"{path} cannot be read ({exc.__class__.__name__}); the default keys are used.") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KeymapError(f"{path} is not valid TOML ({exc}); the default keys are used.") from exc
    unknown = set(data) - {"preset", "keys"}
    if unknown:
        raise KeymapError(f"{path} has {', '.join(sorted(unknown))}; only `preset` and a [keys] table are read.")
    preset = data.get("preset", "default")
    if preset not in PRESETS:
        raise KeymapError(f"{path}: preset {preset!r} is not one of {', '.join(PRESETS)}; the default keys are used.")
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise KeymapError(f"{path}: [keys] must be a table of binding id = keys; the default keys are used.")
    for binding_id, value in keys.items():
        if known and binding_id not in known:
            raise KeymapError(
                f"{path}: there is no binding {binding_id!r} (`datanet tui --keys` lists them); "
                "the default keys are used."
            )
        if not isinstance(value, str) or not _KEYS.match(value.replace(" ", "")):
            raise KeymapError(
                f'{path}: {binding_id} = {value!r} is not a key list like "ctrl+s" or "s,S"; the default keys are used.'
            )
    return Keys(vi=preset == "vi", bindings={k: v.replace(" ", "") for k, v in keys.items()})
