"""`KeyBar`: the key bindings of the focused widget and its screen, on the bottom line, as Textual's `Footer` shows
them, drawn as one line of text.

Why not `Footer`: it mounts one widget per key and mounts them all again whenever the bindings change (every
screen switch and focus change). Each new widget has its styles computed, and on this project's 2-core machines
that cost 50-300 ms of the event loop per switch under load (bench/tui.py, profiled: `Footer.recompose` and
`Stylesheet.apply`). One `Static` redrawn costs about a millisecond. A click on a key still presses it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
    }
    KeyBar > .keybar--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)
        self._spans: list[tuple[int, int, str]] = []  # (start, end, key) of each key on the line

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        if screen is not self.screen or not self.is_attached:
            return
        key_style = self.get_component_rich_style("keybar--key", partial=True)
        text, spans, palette = Text(), [], None
        shown: set[str] = set()
        for _node, binding, enabled, _tooltip in screen.active_bindings.values():
            if binding.key == self.app.COMMAND_PALETTE_BINDING and self.app.ENABLE_COMMAND_PALETTE:
                palette = (binding, enabled)  # on the right, as the Footer shows it
                continue
            if not binding.show or binding.action in shown:
                continue
            shown.add(binding.action)
            start = len(text)
            text.append(f" {self.app.get_key_display(binding)} ", style=key_style if enabled else "dim")
            text.append(f"{binding.description} ", style="" if enabled else "dim")
            spans.append((start, len(text), binding.key))
        if palette is not None:
            binding, enabled = palette
            label = f" {self.app.get_key_display(binding)} {binding.description} "
            gap = max(1, self.size.width - len(text) - len(label))
            text.append(" " * gap)
            start = len(text)
            text.append(label, style=key_style if enabled else "dim")
            spans.append((start, len(text), binding.key))
        self._spans = spans
        self.update(text)

    def on_resize(self, event: events.Resize) -> None:
        self._bindings_changed(self.screen)  # the palette key sits on the right edge

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
