"""A member's SuperNode, run as `python -m client.federation.guard <flower-supernode arguments>`: Flower's own
SuperNode, except that a run's app bundle is refused, before any of it is unpacked or run, unless its SHA-256
is `DATANET_FAB_SHA256` (the FAB this client builds itself, client/federation/fab.py).

Flower 1.42 has no public switch for this (its `--trusted-entities` needs signatures only Flower's hub issues), so
this wraps the one place the SuperNode fetches a FAB: the `get_fab` of the connection that
`start_client_internal` opens (`http_request_response`, a module-level name there). A refusal ends the process
with Flower's exit code for an unverified app (`flwr_exit`: Flower's connection loop swallows plain exceptions);
the member's node sees that exit and reports it in one sentence. Tested by tests/test_federation.py with a FAB that
is not ours.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

REFUSED_EXIT = 304  # flwr's ExitCode.SUPERNODE_INVALID_TRUSTED_ENTITIES
FAB_INDEX = 4  # (node_id, receive, send, get_run, get_fab, ...) as start_client_internal unpacks it


def main() -> int:
    import flwr.supernode.start_client_internal as internal
    from flwr.supercore.exit import ExitCode, flwr_exit
    from flwr.supernode.cli.flower_supernode import flower_supernode

    expected = os.environ.get("DATANET_FAB_SHA256", "").strip().lower()
    if len(expected) != 64:
        sys.stderr.write("datanet: no app hash to check runs against (DATANET_FAB_SHA256)\n")
        return 2
    opened: Any = getattr(internal, "http_request_response")  # noqa: B009  (not re-exported by flwr)

    @contextmanager
    def guarded(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        with opened(*args, **kwargs) as connection:
            parts = list(connection)
            get_fab = parts[FAB_INDEX]

            def checked(fab_hash: str, run_id: int) -> Any:
                fab = get_fab(fab_hash, run_id)
                actual = hashlib.sha256(fab.content).hexdigest()
                if actual != expected or fab.hash_str != expected:
                    flwr_exit(
                        ExitCode.SUPERNODE_INVALID_TRUSTED_ENTITIES,
                        f"datanet: refused the app of run {run_id}: its hash {actual[:16]} is not this client's "
                        f"{expected[:16]}",
                    )
                return fab

            parts[FAB_INDEX] = checked
            yield tuple(parts)

    setattr(internal, "http_request_response", guarded)  # noqa: B010
    sys.argv[0] = "flower-supernode"
    flower_supernode()
    return 0


if __name__ == "__main__":
    sys.exit(main())
