"""What every command handler gets: the configuration, the environment, the output and who to ask."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from client.cli.output import Output
from client.config import Config
from client.unlock import NoPrompter, Opened, Prompter, open_vault


@dataclass(frozen=True, slots=True)
class Context:
    config: Config
    env: Mapping[str, str]
    out: Output
    prompter: Prompter = dataclasses.field(default_factory=NoPrompter)

    def open(self, *, create: bool = True) -> Opened:
        """Unlock the vault (creating it on first run, and then showing its recovery code once)."""
        opened = open_vault(self.config, self.env, self.prompter, create=create)
        if opened.recovery_code is not None:
            self.out.recovery_code(opened.recovery_code, str(self.config.data_dir))
        return opened

    def created_fields(self, opened: Opened) -> dict[str, object]:
        """JSON fields for a command that may have created the vault."""
        return {} if opened.recovery_code is None else {"recovery_code": opened.recovery_code}
