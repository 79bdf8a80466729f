"""Free space kept on the data directory's disk: a write that would leave less than the minimum stops before it
starts (its transaction rolls back), so a sync or an import never fills the disk under the vault, its WAL or the
journal. The minimum comes from the configuration (`[limits] min_free_mb`); 0 turns the check off.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from storage.errors import DiskLow

# A SQLCipher write needs room for the pages in the WAL and then in the database file, with indexes: reserve a few
# times the bytes about to be written beside the minimum.
WRITE_OVERHEAD = 4


@dataclass(slots=True)
class DiskGuard:
    """One per vault, shared by its open shards: a reloaded configuration changes it for all of them."""

    min_free_bytes: int = 0

    def check(self, directory: Path, incoming: int = 0) -> None:
        """Raise DiskLow when writing `incoming` bytes in `directory` would leave less than the minimum free."""
        if self.min_free_bytes <= 0:
            return
        free = shutil.disk_usage(directory).free
        if free - incoming * WRITE_OVERHEAD < self.min_free_bytes:
            raise DiskLow(
                f"Stopped before the disk filled: {free / 2**20:.0f} MB are free in {directory} and at least "
                f"{self.min_free_bytes / 2**20:.0f} MB are kept free ([limits] min_free_mb); what was committed "
                "stays, this write was not kept. Free some space and run it again."
            )
