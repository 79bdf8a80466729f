"""The Textual terminal UI. Not built yet: the TUI issue fills this package (see ARCHITECTURE.md)."""
