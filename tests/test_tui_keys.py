"""The TUI's keys from <config dir>/tui.toml: a remapped binding works, the vi preset moves in tables, and a bad
file is one sentence that changes nothing. (The app runs without a node here: its banner says so.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable

from client.node.async_client import AsyncControlClient
from tui import keymap
from tui.app import DatanetApp, bindings
from tui.keybar import KeyBar

KNOWN = {binding_id for binding_id, _, _ in bindings()}


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / keymap.FILE).write_text(text)
    return tmp_path / keymap.FILE


def test_no_file_is_the_default_keys(tmp_path: Path) -> None:
    assert keymap.load(tmp_path / keymap.FILE, KNOWN) == keymap.Keys(vi=False, bindings={})


def test_a_preset_and_remapped_bindings_are_read(tmp_path: Path) -> None:
    keys = keymap.load(write(tmp_path, 'preset = "vi"\n[keys]\n"screen.log" = "f7, 7"\n'), KNOWN)
    assert keys == keymap.Keys(vi=True, bindings={"screen.log": "f7,7"})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('preset = "emacs"\n', "preset 'emacs' is not one of default, vi"),
        ('[keys]\n"screen.nowhere" = "x"\n', "there is no binding 'screen.nowhere'"),
        ('[keys]\n"screen.log" = 7\n', 'is not a key list like "ctrl+s"'),
        ('[keys]\n"screen.log" = "ctrl s!"\n', 'is not a key list like "ctrl+s"'),
        ("keys = 'x'\n", "[keys] must be a table"),
        ("colour = 'red'\n", "only `preset` and a [keys] table are read"),
        ("[keys\n", "is not valid TOML"),
    ],
)
def test_a_bad_keymap_is_one_sentence(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(keymap.KeymapError) as raised:
        keymap.load(write(tmp_path, text), KNOWN)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_the_app_uses_the_remapped_key_and_the_vi_moves(tmp_path: Path) -> None:
    write(tmp_path, 'preset = "vi"\n[keys]\n"screen.log" = "f7"\n')

    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(socket=tmp_path / "none.sock"), where="nowhere", config_dir=tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one("#datanets", DataTable)
            table.add_columns("NAME")
            for name in ("a", "b", "c"):
                table.add_row(name)
            table.focus()
            await pilot.press("j", "j")
            assert table.cursor_row == 2
            await pilot.press("k")
            assert table.cursor_row == 1
            await pilot.press("f7")
            assert app.current_mode == "log"
            await pilot.press("7")  # moved away: 7 no longer opens the log
            assert app.current_mode == "log"
            await pilot.press("1", "7")
            assert app.current_mode == "home"

    asyncio.run(scenario())


def test_a_bad_keymap_file_is_a_notification_and_the_default_keys_stay(tmp_path: Path) -> None:
    write(tmp_path, 'preset = "emacs"\n')

    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(socket=tmp_path / "none.sock"), where="nowhere", config_dir=tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            assert any("not one of default, vi" in str(n.message) for n in app._notifications)
            await pilot.press("7")
            assert app.current_mode == "log"

    asyncio.run(scenario())


def test_the_key_bar_shows_the_screens_keys_and_a_click_presses_one(tmp_path: Path) -> None:
    write(tmp_path, '[keys]\n"screen.log" = "f7"\n')

    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(socket=tmp_path / "none.sock"), where="nowhere", config_dir=tmp_path)
        async with app.run_test(size=(160, 24)) as pilot:
            bar = app.screen.query_one(KeyBar)
            line = str(bar.render())
            assert " f7 Log " in line and " 8 Jobs " in line and " 7 Log " not in line  # the key as remapped
            assert line.rstrip().lower().endswith("palette")  # the palette's key on the right edge
            start = next(start for start, _end, key in bar._spans if key == "8")
            await pilot.click(KeyBar, offset=(start + 1, 0))
            assert app.current_mode == "jobs"
            jobs_line = str(app.screen.query_one(KeyBar).render())  # the jobs screen's own keys now
            assert jobs_line != line

    asyncio.run(scenario())


def test_f1_shows_and_hides_the_help_for_the_focused_widget(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(socket=tmp_path / "none.sock"), where="nowhere", config_dir=tmp_path)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("f1")
            assert app.screen.query("HelpPanel")
            await pilot.press("f1")
            assert not app.screen.query("HelpPanel")

    asyncio.run(scenario())
