"""What a Datanet is locally: a named shard serving one task. Tasks say what a record looks like."""

from __future__ import annotations

from typing import Final

TASKS: Final[dict[str, str]] = {
    "intent-classification": 'short texts with a label: {"text": "...", "label": "..."}',
    "text": 'free text for language-model fine-tuning: {"text": "..."}',
}
DEFAULT_TASK: Final = "text"
